"""Running checks concurrently, each bounded in time, and recording the run.

One check that hangs or crashes is reported as failed and never stops the others. A run is
recorded as a deployment checkpoint in the catalog (version, git commit, every result).
"""

from __future__ import annotations

import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from warroom.catalog import CheckpointRecord
from warroom.deployment.checks import FAILED, Check, CheckContext, CheckResult
from warroom.errors import WarroomError

__all__ = ["ValidationReport", "git_commit", "run_checks"]

CHECKPOINT_TYPE = "deployment"


@dataclass
class ValidationReport:
    name: str
    version: str | None
    git_commit: str | None
    started_at: datetime
    duration_seconds: float
    results: list[CheckResult]
    stages: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.status:
            self.status = "failed" if self.blocking else "passed"

    @property
    def blocking(self) -> list[CheckResult]:
        return [result for result in self.results if result.blocking]

    @property
    def passed(self) -> bool:
        return not self.blocking

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": CHECKPOINT_TYPE,
            "status": self.status,
            "version": self.version,
            "git_commit": self.git_commit,
            "created_at": self.started_at.isoformat(),
            "duration_seconds": round(self.duration_seconds, 3),
            "passed": self.passed,
            "checks": [result.to_dict() for result in self.results],
            "stages": self.stages,
            **self.extra,
        }

    def record(self) -> CheckpointRecord:
        details = self.to_dict()
        for key in ("name", "type", "status", "created_at"):
            details.pop(key)
        return CheckpointRecord(
            type=CHECKPOINT_TYPE,
            name=self.name,
            status=self.status,
            created_at=self.started_at,
            source=self.version,
            details=details,
        )


def git_commit(workdir: Path) -> str | None:
    """The commit checked out in ``workdir``, or None outside a git repository."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=workdir, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _run_one(check: Check, ctx: CheckContext, default_timeout: float) -> CheckResult:
    """Run ``check`` in its own thread, waiting at most its timeout."""
    timeout = check.timeout or default_timeout
    box: dict[str, Any] = {}
    started = time.monotonic()

    def target() -> None:
        try:
            box["result"] = check.run(ctx)
        except WarroomError as exc:
            box["error"] = exc.message
        except Exception as exc:  # noqa: BLE001 - a crashing check is a failed check
            box["error"] = f"the check crashed: {type(exc).__name__}: {exc}"

    worker = threading.Thread(target=target, name=f"check-{check.name}", daemon=True)
    worker.start()
    worker.join(timeout)
    elapsed = time.monotonic() - started
    if worker.is_alive():
        return CheckResult(
            check.name,
            check.severity,
            FAILED,
            f"did not finish within {timeout:g} s (hung); investigate it",
            elapsed,
        )
    if "error" in box:
        return CheckResult(check.name, check.severity, FAILED, box["error"], elapsed)
    result: CheckResult = box["result"]
    result.duration_seconds = elapsed
    return result


def run_checks(checks: list[Check], ctx: CheckContext, default_timeout: float) -> list[CheckResult]:
    """Every check, concurrently; results in the order of ``checks``."""
    with ThreadPoolExecutor(
        max_workers=min(8, max(1, len(checks))), thread_name_prefix="checks"
    ) as pool:
        return list(pool.map(lambda check: _run_one(check, ctx, default_timeout), checks))
