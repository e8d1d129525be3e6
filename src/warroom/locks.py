"""Locks that hold across processes: ``flock`` on files in a lock directory.

A lock is released when its holder exits, even by SIGKILL, so a crashed backup never leaves a
stale lock behind. The holder writes its pid and start time into the file so that whoever is
refused can say who holds it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from warroom.errors import ConflictError, StorageError

__all__ = ["hold_lock", "lock_file_name", "try_lock"]


def lock_file_name(identity: str) -> str:
    """A safe file name for any identity string (a source URL, a checkpoint name)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", identity)[:60]
    return f"{readable}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}.lock"


def _open(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot create lock file {path}: {exc.strerror}") from exc


@contextmanager
def try_lock(path: Path) -> Iterator[bool]:
    """Take the lock if it is free; yield whether it was taken (never waits)."""
    fd = _open(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextmanager
def hold_lock(path: Path, what: str, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold the lock at ``path`` for the block, waiting up to ``wait_seconds`` for it.

    Raises ConflictError naming ``what`` and the current holder when it stays taken.
    """
    fd = _open(path)
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = Path(path).read_text(errors="replace").strip() or "another process"
                    raise ConflictError(
                        f"{what} is already running ({holder}); wait for it to finish "
                        "or retry later",
                        lock=str(path),
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z".encode())
        yield
    finally:
        os.close(fd)
