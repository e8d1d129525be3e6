"""``warroom wal push %p`` and ``warroom wal fetch %f %p``: PostgreSQL's archive_command and
restore_command, kept light (no CLI framework, no catalog, no pydantic) because PostgreSQL
runs them once per WAL segment.

The repository is BACKUP_DIR (default ./data/backups, or ``backup_dir`` in warroom.toml).
Exit codes: 0 done; 1 failed or not found (PostgreSQL keeps the segment and retries, or ends
recovery); 2 bad usage; 3 integrity failure.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

USAGE = "usage: warroom wal push PATH | warroom wal fetch NAME DESTINATION"


def _backup_dir() -> str:
    if os.environ.get("BACKUP_DIR"):
        return os.environ["BACKUP_DIR"]
    config = Path(os.environ.get("WARROOM_CONFIG", "warroom.toml"))
    if config.is_file():
        with open(config, "rb") as handle:
            value = tomllib.load(handle).get("backup_dir")
        if value:
            return str(value)
    return "./data/backups"


def run_wal_command(args: list[str]) -> int:
    from warroom.errors import NotFoundError, WarroomError
    from warroom.storage import open_storage
    from warroom.wal import WalArchive

    if not (
        (args[:1] == ["push"] and len(args) == 2) or (args[:1] == ["fetch"] and len(args) == 3)
    ):
        sys.stderr.write(USAGE + "\n")
        return 2
    try:
        archive = WalArchive(open_storage(_backup_dir()))
        if args[0] == "push":
            archive.push(Path(args[1]))
        else:
            archive.fetch(args[1], Path(args[2]))
    except WarroomError as error:
        sys.stderr.write(f"warroom wal {args[0]}: {error.message}\n")
        if isinstance(error, NotFoundError):
            return 1  # restore_command: "not in the archive" (the normal end of recovery)
        return error.exit_code
    return 0
