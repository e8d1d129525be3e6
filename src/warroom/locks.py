"""Locks that hold across processes: ``flock`` on files in a lock directory.

A lock is released when its holder exits, even by SIGKILL, so a crashed backup never leaves a
stale lock behind. The holder writes its pid and start time into the file so that whoever is
refused can say who holds it. Lock files are created as :mod:`warroom.storage.files` says
(private, or shared with ``WARROOM_SHARED_GROUP``); a failure to create or write one (a full
disk, a read-only file system) is a StorageError naming the file.

A *claim* (:func:`try_claim`) is a lock whose file is removed when it is released: it marks
work files (a SQLite restore's staging file) as in use, so that a sweep removes only those whose
process is gone.
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

from warroom.errors import ConflictError
from warroom.storage.files import make_dirs, open_new, storage_error

__all__ = ["hold_lock", "lock_file_name", "try_claim", "try_lock"]


def lock_file_name(identity: str) -> str:
    """A safe file name for any identity string (a source URL, a checkpoint name)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", identity)[:60]
    return f"{readable}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}.lock"


def _open(path: Path) -> int:
    make_dirs(path.parent)
    return open_new(path, shared=True, exist_ok=True)


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
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z".encode())
        except OSError as exc:
            raise storage_error("write lock file", path, exc) from exc
        yield
    finally:
        os.close(fd)


@contextmanager
def try_claim(path: Path) -> Iterator[bool]:
    """Claim ``path`` if no live process does; yield whether it was claimed. A claim is
    removed on release (not when its holder is killed: then the next ``try_claim`` gets it).
    Taking the lock on a file that a releasing process has just removed is detected, and the
    claim is taken on a fresh file instead."""
    while True:
        fd = _open(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield True
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
