"""Running the ``warroom`` CLI as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def cli_env(workdir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    for name in ("DATABASE_URL", "BACKUP_DIR", "CHECKPOINT_DIR", "PORT"):
        env.pop(name, None)
    env.update(
        BACKUP_DIR=str(workdir / "backups"),
        CHECKPOINT_DIR=str(workdir / "checkpoints"),
        WARROOM_CATALOG_URL=f"sqlite:///{workdir}/catalog.db",
    )
    env.update(extra)
    return env


def warroom_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "warroom", *args]


def _default_hang_up() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def run_warroom(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 120, hang_up: bool = False
) -> Result:
    """Run the CLI. ``hang_up``: with SIGHUP's default action, as in a terminal, whatever this
    test run inherited (under nohup or some CI runners it is ignored, and so it would be in
    warroom too)."""
    done = subprocess.run(
        warroom_command(*args),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_default_hang_up if hang_up else None,
    )
    return Result(done.returncode, done.stdout, done.stderr)
