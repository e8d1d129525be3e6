"""Cross-cutting concerns as wrappers of the :class:`~warroom.repository.storage.Storage`
protocol (restic's backend design): retries, replication, read-only. Each keeps the contract
of the module it wraps; what each adds is in its class docstring.
"""

from __future__ import annotations

import builtins
import heapq
import random
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from warroom.errors import NotFoundError, ReadOnlyStorageError, StorageError, TransientStorageError
from warroom.repository.storage import (
    ChunkStream,
    ObjectInfo,
    Part,
    PartWiseWrites,
    Storage,
    Upload,
)

__all__ = ["MirrorStorage", "ReadOnlyStorage", "RetryStorage"]

if TYPE_CHECKING:
    from logging import Logger
    from threading import Semaphore


def _log() -> Logger:
    """The repository's logger, imported when something is logged: the WAL commands run once
    per segment, and most of them never log."""
    import logging

    return logging.getLogger("warroom.repository")


T = TypeVar("T")


class _Wrapper(PartWiseWrites):
    """Passes every call to ``inner``; subclasses override what they change."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    @property
    def location(self) -> str:
        return self.inner.location

    @property
    def part_size(self) -> int:
        return self.inner.part_size

    @property
    def parallel_parts(self) -> int:
        return self.inner.parallel_parts

    @property
    def parts_per_tier(self) -> int | None:
        return self.inner.parts_per_tier

    @property
    def upload_slots(self) -> Semaphore | None:
        return self.inner.upload_slots

    def begin(self, key: str) -> Upload:
        return self.inner.begin(key)

    def get(self, key: str) -> ChunkStream:
        return self.inner.get(key)

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def children(self, prefix: str) -> builtins.list[str]:
        return self.inner.children(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def delete_prefix(self, prefix: str) -> None:
        self.inner.delete_prefix(prefix)

    def free_bytes(self) -> int | None:
        return self.inner.free_bytes()

    def sweep_uploads(self, older_than: datetime) -> int:
        return self.inner.sweep_uploads(older_than)


class RetryStorage(_Wrapper):
    """Retries every call that fails with TransientStorageError, up to ``attempts`` times in
    all, waiting ``base_delay * 2**n`` seconds (at most ``max_delay``, with jitter) between
    attempts; permanent errors are raised at once. An upload retries each part on its own (a
    part is bytes in memory), so a one-shot source stream is never replayed. A stream returned
    by ``get`` is not resumed if it fails midway. ``sleep`` and ``jitter`` are injectable."""

    def __init__(
        self,
        inner: Storage,
        *,
        attempts: int = 5,
        base_delay: float = 0.25,
        max_delay: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(inner)
        self.attempts = attempts
        self.base_delay, self.max_delay = base_delay, max_delay
        self.sleep, self.jitter = sleep, jitter

    def call(self, function: Callable[[], T]) -> T:
        """``function()``, tried again on TransientStorageError."""
        for attempt in range(1, self.attempts + 1):
            try:
                return function()
            except TransientStorageError as exc:
                if attempt == self.attempts:
                    raise
                delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
                delay *= 0.5 + self.jitter() / 2
                _log().warning(
                    "%s (attempt %d of %d); trying again in %.2fs",
                    exc.message,
                    attempt,
                    self.attempts,
                    delay,
                )
                self.sleep(delay)
        raise AssertionError("unreachable")

    def begin(self, key: str) -> Upload:
        return _RetryUpload(self, self.call(lambda: self.inner.begin(key)))

    def get(self, key: str) -> ChunkStream:
        return self.call(lambda: self.inner.get(key))

    def stat(self, key: str) -> ObjectInfo:
        return self.call(lambda: self.inner.stat(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return iter(self.call(lambda: builtins.list(self.inner.list(prefix))))

    def children(self, prefix: str) -> builtins.list[str]:
        return self.call(lambda: self.inner.children(prefix))

    def delete(self, key: str) -> None:
        self.call(lambda: self.inner.delete(key))

    def delete_prefix(self, prefix: str) -> None:
        self.call(lambda: self.inner.delete_prefix(prefix))

    def free_bytes(self) -> int | None:
        return self.call(self.inner.free_bytes)

    def sweep_uploads(self, older_than: datetime) -> int:
        return self.call(lambda: self.inner.sweep_uploads(older_than))

    def copies(self) -> builtins.list[Storage]:
        inner = self.inner.copies()
        if inner == [self.inner]:
            return [self]
        return [
            RetryStorage(
                copy,
                attempts=self.attempts,
                base_delay=self.base_delay,
                max_delay=self.max_delay,
                sleep=self.sleep,
                jitter=self.jitter,
            )
            for copy in inner
        ]


class _RetryUpload:
    def __init__(self, retry: RetryStorage, inner: Upload) -> None:
        self._retry, self._inner = retry, inner

    def write(self, part: Part) -> None:
        self._retry.call(lambda: self._inner.write(part))

    def commit(self, size: int, parts: int) -> None:
        self._retry.call(lambda: self._inner.commit(size, parts))

    def abort(self) -> None:
        self._inner.abort()


class MirrorStorage(_Wrapper):
    """A primary and its replicas (any backends), written together.

    A write goes to every member: each part is sent to each, and the object is committed on
    the primary first, then on each replica; it succeeds only once every copy is committed
    (a failure aborts the copies not yet committed; those committed hold the same bytes, so
    the caller's retry or cleanup is safe). Reads come from the first member, in order, that
    has the object and can be reached, and say which in the log (``copies()`` lets a reader
    that checks content pick the first *intact* copy). ``list`` and ``children`` are the
    union over the members that can be reached; deletes go to every member.
    """

    def __init__(self, primary: Storage, replicas: Iterable[Storage]) -> None:
        super().__init__(primary)
        self.members = [primary, *replicas]

    @property
    def location(self) -> str:
        return " + ".join(member.location for member in self.members)

    @property
    def part_size(self) -> int:
        return max(member.part_size for member in self.members)

    @property
    def parallel_parts(self) -> int:
        return min(member.parallel_parts for member in self.members)

    @property
    def parts_per_tier(self) -> int | None:
        """The most of the members that set one, so each takes every part: an S3 replica
        beside a directory grows its parts, one on R2 (parts of one size) keeps them."""
        tiers = [member.parts_per_tier for member in self.members if member.parts_per_tier]
        return max(tiers, default=None)

    def begin(self, key: str) -> Upload:
        uploads: builtins.list[Upload] = []
        try:
            for member in self.members:
                uploads.append(member.begin(key))
        except BaseException:
            for upload in uploads:
                upload.abort()
            raise
        return _MirrorUpload(uploads)

    def _first(self, key: str, read: Callable[[Storage], T]) -> T:
        """``read(member)`` of the first member that answers; NotFoundError only when no
        member has it, else the first member's failure."""
        failure: StorageError | None = None
        for number, member in enumerate(self.members):
            try:
                result = read(member)
            except NotFoundError:
                continue
            except StorageError as exc:
                failure = failure or exc
                _log().warning("%s; trying the next copy", exc.message)
                continue
            if number:
                _log().info("read %s from %s (copy %d)", key, member.location, number + 1)
            return result
        if failure is not None:
            raise failure
        raise NotFoundError(f"no object {key!r} in {self.location}", key=key)

    def get(self, key: str) -> ChunkStream:
        return self._first(key, lambda member: member.get(key))

    def stat(self, key: str) -> ObjectInfo:
        return self._first(key, lambda member: member.stat(key))

    def _reachable(self, read: Callable[[Storage], T]) -> builtins.list[T]:
        results, failure = [], None
        for member in self.members:
            try:
                results.append(read(member))
            except StorageError as exc:
                failure = failure or exc
        if not results and failure is not None:
            raise failure
        return results

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        listings = self._reachable(lambda member: builtins.list(member.list(prefix)))
        last = None
        for info in heapq.merge(*listings, key=lambda info: info.key):
            if info.key != last:
                last = info.key
                yield info

    def children(self, prefix: str) -> builtins.list[str]:
        names = self._reachable(lambda member: member.children(prefix))
        return sorted(set().union(*names))

    def delete(self, key: str) -> None:
        for member in self.members:
            member.delete(key)

    def delete_prefix(self, prefix: str) -> None:
        for member in self.members:
            member.delete_prefix(prefix)

    def free_bytes(self) -> int | None:
        known = [free for free in (m.free_bytes() for m in self.members) if free is not None]
        return min(known) if known else None

    def sweep_uploads(self, older_than: datetime) -> int:
        return sum(member.sweep_uploads(older_than) for member in self.members)

    def copies(self) -> builtins.list[Storage]:
        return [copy for member in self.members for copy in member.copies()]


class _MirrorUpload:
    def __init__(self, uploads: builtins.list[Upload]) -> None:
        self._uploads = uploads
        self._committed = 0

    def write(self, part: Part) -> None:
        for upload in self._uploads:
            upload.write(part)

    def commit(self, size: int, parts: int) -> None:
        for upload in self._uploads:
            upload.commit(size, parts)
            self._committed += 1

    def abort(self) -> None:
        for upload in self._uploads[self._committed :]:
            upload.abort()


class ReadOnlyStorage(_Wrapper):
    """Every read passes through; every write or delete raises ReadOnlyStorageError before
    anything is touched (for restores, verification and audits of a repository that must not
    change)."""

    def _refuse(self, what: str) -> ReadOnlyStorageError:
        return ReadOnlyStorageError(
            f"cannot {what} in {self.location}: the repository is open read-only",
            location=self.location,
        )

    def begin(self, key: str) -> Upload:
        raise self._refuse(f"write {key}")

    def delete(self, key: str) -> None:
        raise self._refuse(f"delete {key}")

    def delete_prefix(self, prefix: str) -> None:
        raise self._refuse(f"delete {prefix}")

    def sweep_uploads(self, older_than: datetime) -> int:
        raise self._refuse("sweep unfinished uploads")

    def copies(self) -> builtins.list[Storage]:
        inner = self.inner.copies()
        return [self] if inner == [self.inner] else [ReadOnlyStorage(copy) for copy in inner]
