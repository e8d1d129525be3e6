"""The ``Locker`` protocol: locks on a repository that hold across processes, and hosts.

- :class:`FileLocker`: ``flock`` files in a local directory (``BACKUP_DIR/.locks``), as
  before; released when the holder exits, even by SIGKILL. For a repository on one host.
- :class:`LeaseLocker`: a lease object ``locks/<name>`` in the bucket itself, so every host
  that writes the repository sees it. Taken with an S3 conditional write (``If-None-Match:
  *``), renewed by its holder every ``ttl / 4`` (``If-Match`` its own ETag, so a holder whose
  lease was broken learns it and never overwrites the new holder's), deleted on release. A
  lease not renewed for ``ttl`` seconds (its holder was killed) is stale: the next taker
  replaces it with ``If-Match`` the stale ETag, so of two hosts breaking it at once only one
  wins. Staleness compares the object's modification time (the store's clock) with this
  host's clock: hosts' clocks must agree to well within ``ttl``.

A lock is named by an identity (``source:<id>``, ``name:<backup>``); :meth:`Locker.hold`
raises ConflictError naming ``what`` and the holder when it stays taken.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from warroom.errors import ConfigurationError, ConflictError, NotFoundError, WarroomError
from warroom.locks import hold_lock, lock_file_name, try_lock
from warroom.repository.layout import LOCAL_LOCKS, lease_key

if TYPE_CHECKING:
    from warroom.repository.s3 import S3Storage

__all__ = ["FileLocker", "LeaseLocker", "Locker", "open_locker", "probe_locks"]


class Locker(Protocol):
    def hold(
        self, identity: str, what: str, wait_seconds: float = 0.0
    ) -> AbstractContextManager[None]:
        """Hold the lock for the block, waiting up to ``wait_seconds``; ConflictError else."""
        ...

    def try_hold(self, identity: str) -> AbstractContextManager[bool]:
        """Take the lock if it is free; yield whether it was taken (never waits)."""
        ...


class FileLocker:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def hold(
        self, identity: str, what: str, wait_seconds: float = 0.0
    ) -> AbstractContextManager[None]:
        return hold_lock(self.directory / lock_file_name(identity), what, wait_seconds)

    def try_hold(self, identity: str) -> AbstractContextManager[bool]:
        return try_lock(self.directory / lock_file_name(identity))


class LeaseLocker:
    """Leases in an S3 bucket (see the module docstring); ``clock`` and ``wait`` (the pause
    between two attempts to take a lease) are injectable."""

    def __init__(
        self,
        storage: S3Storage,
        ttl: float = 300.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        wait: Callable[[float], None] = time.sleep,
    ) -> None:
        self.storage, self.ttl, self.clock, self.wait = storage, ttl, clock, wait

    def _key(self, identity: str) -> str:
        return lease_key(lock_file_name(identity))

    def _acquire(self, key: str, body: bytes) -> tuple[str | None, str]:
        """(our new ETag, "") or (None, who holds the live lease)."""
        etag = self.storage.swap(key, body, None)
        if etag is not None:
            return etag, ""
        try:
            held, held_etag, modified = self.storage.read_tagged(key)
        except NotFoundError:  # released meanwhile
            return self.storage.swap(key, body, None), "another process"
        if self.clock() - modified > timedelta(seconds=self.ttl):
            return self.storage.swap(key, body, held_etag), "another process"
        try:
            return None, str(json.loads(held)["holder"])
        except (ValueError, KeyError, TypeError):
            return None, "another process"

    @contextmanager
    def _lease(self, identity: str, what: str | None, wait_seconds: float) -> Iterator[bool]:
        key = self._key(identity)
        holder = f"{socket.gethostname()} pid {os.getpid()} since {self.clock():%Y-%m-%d %H:%M:%S}Z"
        body = json.dumps({"holder": holder, "ttl": self.ttl}).encode()
        deadline = time.monotonic() + wait_seconds
        while True:
            etag, holder = self._acquire(key, body)
            if etag is not None:
                break
            if time.monotonic() >= deadline:
                if what is None:
                    yield False
                    return
                raise ConflictError(
                    f"{what} is already running ({holder}); wait for it to finish or retry later",
                    lock=f"{self.storage.location}/{key}",
                )
            self.wait(0.2)
        lease = {"etag": etag}  # the renewer keeps it current
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(key, body, lease, stop), daemon=True, name="lease"
        )
        renewer.start()
        try:
            yield True
        finally:
            stop.set()
            renewer.join()
            self._release(key, lease["etag"])

    def _release(self, key: str, etag: str | None) -> None:
        """Delete the lease unless another host has taken it over meanwhile."""
        try:
            current = self.storage.read_tagged(key)[1]
        except NotFoundError:
            return
        if etag is not None and current == etag:
            self.storage.delete(key)

    def _renew(
        self, key: str, body: bytes, lease: dict[str, str | None], stop: threading.Event
    ) -> None:
        while not stop.wait(self.ttl / 4):
            try:
                renewed = self.storage.swap(key, body, lease["etag"])
            except WarroomError:
                continue  # a transient failure: the next renewal may succeed
            lease["etag"] = renewed  # None: taken over after this host stalled past the ttl
            if renewed is None:
                return

    def hold(
        self, identity: str, what: str, wait_seconds: float = 0.0
    ) -> AbstractContextManager[None]:
        @contextmanager
        def held() -> Iterator[None]:
            with self._lease(identity, what, wait_seconds):
                yield

        return held()

    def try_hold(self, identity: str) -> AbstractContextManager[bool]:
        return self._lease(identity, None, 0.0)


def open_locker(location: str | Path) -> Locker:
    """The locker of the repository at ``location``: leases in a bucket, files locally."""
    text = str(location)
    if text.startswith("s3://"):
        from warroom.repository.s3 import S3Storage

        return LeaseLocker(S3Storage.from_url(text))
    return FileLocker(Path(text) / LOCAL_LOCKS)


PROBE_LOCK = "probe:locks"


def probe_locks(location: str | Path) -> None:
    """ConfigurationError unless a lock held on the repository at ``location`` keeps a second
    taker out, as every lock of warroom relies on: an S3 server that ignores conditional writes
    (``If-None-Match``) would let both in, and two backups or cleanups would run at once. The
    probe lock is released at once (a lease leaves no object behind)."""
    locker = open_locker(location)
    with locker.hold(PROBE_LOCK, "a check of the repository's locks", wait_seconds=30):
        with locker.try_hold(PROBE_LOCK) as taken:
            if taken:
                raise ConfigurationError(
                    f"the locks of {location} do not keep a second taker out: its S3 server "
                    "ignores conditional writes (If-None-Match), on which warroom's locks "
                    "rest; use a server that honours them (AWS S3, Cloudflare R2, Ceph RGW, "
                    "a recent MinIO)"
                )
