"""What the benchmark scripts share: where the project is, and how to run a given ``warroom``.

Another engineer may be editing ``src/`` while a benchmark runs: ``--commit REV`` measures a
fixed revision instead, extracted with ``git archive`` (the index and work tree are untouched).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
WARROOM = PROJECT_DIR / ".venv" / "bin" / "warroom"
PYTHON = PROJECT_DIR / ".venv" / "bin" / "python"
# The reference database's script lives in shared/ beside the project, never at a fixed path.
MAKE_DB = PROJECT_DIR.parent / "shared" / "bench" / "make-bench-db.sh"


def git(*args: str) -> str:
    argv = ["git", "-C", str(PROJECT_DIR), *args]
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # read-only: never refresh the index
    return subprocess.run(argv, check=True, capture_output=True, text=True, env=env).stdout.strip()


def warroom_source(rev: str | None, work: Path) -> tuple[Path | None, dict[str, object]]:
    """The ``src`` directory to measure (None: the installed working tree) and a description."""
    head = git("rev-parse", "HEAD")
    if rev is None:
        dirty = bool(git("status", "--porcelain", "--", "src"))
        return None, {"source": "working tree", "head": head, "src_modified": dirty}
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    archive = subprocess.run(
        ["git", "-C", str(PROJECT_DIR), "archive", commit, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    return work / "src", {"source": "commit", "commit": commit, "head": head}


def warroom_env(repo: Path, work: Path, source: Path | None) -> tuple[dict[str, str], str]:
    """The environment that runs ``warroom`` on ``repo`` with a catalog in ``work`` (and the
    code of ``source`` when given), and the warroom module file it then imports."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("WARROOM_") and key != "DATABASE_URL"
    }
    env.update(BACKUP_DIR=str(repo), WARROOM_CATALOG_URL=f"sqlite:///{work / 'catalog.db'}")
    if source is not None:  # ahead of the editable install's path on sys.path
        env["PYTHONPATH"] = str(source)
    probe = [str(PYTHON), "-c", "import warroom; print(warroom.__file__)"]
    found = subprocess.run(probe, env=env, capture_output=True, text=True).stdout.strip()
    if source is not None and not found.startswith(str(source)):
        sys.exit(f"warroom is imported from {found}, not from {source}")
    # Byte-compiled, as pip leaves an installed package: under PYTHONDONTWRITEBYTECODE (set
    # in this workplace) an editable or extracted source tree is compiled again by every
    # command, 15 to 30 ms of each wal push and more of each backup, that no install pays.
    package = str(Path(found).parent)
    subprocess.run([str(PYTHON), "-m", "compileall", "-q", package], check=True)
    return env, found


def launch_dbos(name: str, url: str, steps: int) -> Callable[[], int]:
    """Inside DBOS's own virtualenv (a benchmark's ``--dbos-only`` run): launch DBOS Transact as
    app ``name`` with its system database at ``url``, and return the workflow the benchmarks
    compare with warroom's, ``steps`` steps each returning a small dict. The caller ends with
    ``DBOS.destroy()``."""
    import logging

    from dbos import DBOS, DBOSConfig

    config: DBOSConfig = {"name": name, "system_database_url": url, "log_level": "WARNING"}
    DBOS(config=config)

    @DBOS.step()
    def step(i: int) -> dict[str, int]:
        return {"i": i}

    @DBOS.workflow()
    def ten() -> int:
        for i in range(steps):
            step(i)
        return 1

    DBOS.launch()
    logging.getLogger("dbos").setLevel(logging.WARNING)
    return ten
