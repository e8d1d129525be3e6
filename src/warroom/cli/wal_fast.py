"""``warroom wal push %p`` and ``warroom wal fetch %f %p``: PostgreSQL's archive_command and
restore_command (and ``warroom wal check``, which setup-pitr runs to prove a push can work
there: it stores, reads back and deletes a probe object), kept light (no CLI framework, no
catalog, no pydantic) because PostgreSQL runs them once per WAL segment.

The repository is BACKUP_DIR (default ./data/backups, or ``backup_dir`` in warroom.toml).
Exit codes: 0 done; 1 push failed (PostgreSQL keeps the segment and retries) or fetch found
nothing (the normal end of the archive); 2 bad usage; 255 when a fetch fails for any other
reason (a damaged segment, an unreachable repository). PostgreSQL reads any code up to 125 as
"not archived" and would end recovery early, silently; above 125 it stops recovery instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

USAGE = "usage: warroom wal push PATH | warroom wal fetch NAME DESTINATION | warroom wal check"


FETCH_FAILED = 255


def _backup_dir() -> str:
    if os.environ.get("BACKUP_DIR"):
        return os.environ["BACKUP_DIR"]
    config = Path(os.environ.get("WARROOM_CONFIG", "warroom.toml"))
    if config.is_file():
        import tomllib

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
        (args[:1] == ["push"] and len(args) == 2)
        or (args[:1] == ["fetch"] and len(args) == 3)
        or args == ["check"]
    ):
        sys.stderr.write(USAGE + "\n")
        return 2
    repository = _backup_dir()
    if not Path(repository).is_absolute():
        # PostgreSQL runs this in its data directory: a relative repository would land there.
        sys.stderr.write(
            f"warroom wal {args[0]}: BACKUP_DIR must be an absolute path, not "
            f"{repository!r}; set it in archive_command/restore_command\n"
        )
        return 2
    try:
        archive = WalArchive(open_storage(repository))
        if args[0] == "push":
            archive.push(Path(args[1]))
        elif args[0] == "check":
            archive.check()
        else:
            archive.fetch(args[1], Path(args[2]))
    except WarroomError as error:
        sys.stderr.write(f"warroom wal {args[0]}: {error.message}\n")
        if isinstance(error, NotFoundError):
            return 1  # restore_command: "not in the archive" (the normal end of recovery)
        return FETCH_FAILED if args[0] == "fetch" else 1
    return 0
