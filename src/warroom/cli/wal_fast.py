"""``warroom wal push %p`` and ``warroom wal fetch %f %p``: PostgreSQL's archive_command and
restore_command (and ``warroom wal check``, which setup-pitr runs to prove a push can work
there: it stores, reads back and deletes a probe object), kept light (no CLI framework, no
catalog, no pydantic) because PostgreSQL runs them once per WAL segment.

The repository is BACKUP_DIR (default ./data/backups, or ``backup_dir`` in warroom.toml): an
absolute directory or ``s3://bucket/prefix``, mirrored to WARROOM_REPLICAS and encrypted with
WARROOM_ENCRYPTION_KEY(_FILE), read as BACKUP_DIR is (see :func:`_setting`). A
fetch served by a replica says so on stderr. S3 goes through the minimal client of
:mod:`warroom.repository.s3wire` when the environment holds static credentials and nothing
else botocore would honour (AWS_PROFILE, config files, ...: then through botocore).
Exit codes: 0 done; 1 push failed (PostgreSQL keeps the segment and retries) or fetch found
nothing (the normal end of the archive); 2 bad usage; 255 when a fetch fails for any other
reason (a damaged segment, an unreachable repository). PostgreSQL reads any code up to 125 as
"not archived" and would end recovery early, silently; above 125 it stops recovery instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from warroom.wal import WalArchive

USAGE = "usage: warroom wal push PATH | warroom wal fetch NAME DESTINATION | warroom wal check"


FETCH_FAILED = 255


def _setting(variable: str, default: str = "") -> str:
    """The setting ``variable`` from the environment; warroom.toml (lower case) is read only
    when BACKUP_DIR is not in the environment (setup-pitr puts every setting the commands
    need in the command itself)."""
    if os.environ.get(variable) or os.environ.get("BACKUP_DIR"):
        return os.environ.get(variable) or default
    config = Path(os.environ.get("WARROOM_CONFIG", "warroom.toml"))
    if config.is_file():
        import tomllib

        with open(config, "rb") as handle:
            value = tomllib.load(handle).get(variable.lower().removeprefix("warroom_"))
        if value:
            return str(value)
    return default


def _open_archive() -> WalArchive:
    """The WAL archive of the configured repository (its replicas and keys too)."""
    from warroom.repository import open_repository
    from warroom.repository.replicas import parse_replicas
    from warroom.wal import WalArchive

    keys: list[bytes] = []
    key, key_file = _setting("WARROOM_ENCRYPTION_KEY"), _setting("WARROOM_ENCRYPTION_KEY_FILE")
    if key or key_file:
        from warroom.repository.keyring import load_master_keys

        keys = load_master_keys(key or None, Path(key_file) if key_file else None)
    replicas = [replica.location for replica in parse_replicas(_setting("WARROOM_REPLICAS"))]
    repository = _setting("BACKUP_DIR", "./data/backups")
    return WalArchive(open_repository(repository, keys, replicas, short_lived=True))


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` once stdout and stderr are flushed, without the
    interpreter's finalization (freeing every module and object: 7 ms of each push here).
    Nothing is left for it to do: a command has made what it wrote durable (fsynced, or
    acknowledged by S3) and closed its files before it returns, and leaves no thread."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken pipe: nothing more can be said on it
    os._exit(code)


def run_wal_command(args: list[str]) -> int:
    from warroom.errors import NotFoundError, WarroomError

    if not (
        (args[:1] == ["push"] and len(args) == 2)
        or (args[:1] == ["fetch"] and len(args) == 3)
        or args == ["check"]
    ):
        sys.stderr.write(USAGE + "\n")
        return 2
    repository = _setting("BACKUP_DIR", "./data/backups")
    if "://" not in repository and not Path(repository).is_absolute():
        # PostgreSQL runs this in its data directory: a relative repository would land there.
        sys.stderr.write(
            f"warroom wal {args[0]}: BACKUP_DIR must be an absolute path, not "
            f"{repository!r}; set it in archive_command/restore_command\n"
        )
        return 2
    try:
        archive = _open_archive()
        if args[0] == "push":
            archive.push(Path(args[1]))
        elif args[0] == "check":
            archive.check()
        else:
            source = archive.fetch(args[1], Path(args[2]))
            if source != archive.storage.copies()[0].location:
                sys.stderr.write(f"warroom wal fetch: {args[1]} from {source}\n")
    except WarroomError as error:
        sys.stderr.write(f"warroom wal {args[0]}: {error.message}\n")
        if isinstance(error, NotFoundError):
            return 1  # restore_command: "not in the archive" (the normal end of recovery)
        return FETCH_FAILED if args[0] == "fetch" else 1
    return 0
