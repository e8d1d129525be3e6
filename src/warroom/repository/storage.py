"""The ``Storage`` protocol: where a repository's objects live, and how they are written.

Keys are ``/``-separated relative paths built by the code (``database/<name>/manifest.json``),
never taken raw from users; :func:`check_key` refuses anything else with ValueError.

Contract, for every backend and every wrapper:

- Writes are part-wise. ``begin(key)`` starts an :class:`Upload`; the writer hands it
  :class:`Part` objects (bytes in memory, so any part can be sent again: a retry or a mirror
  replays a part, never the caller's stream), then ``commit``. Nothing is visible under
  ``key`` before ``commit`` returns; after ``abort``, or a failure anywhere, nothing new is
  (an older object stays). :func:`write_stream` is the one driver of uploads: it cuts a stream
  into parts, sends up to ``parallel`` of them at once with bounded memory, and aborts on any
  failure, including KeyboardInterrupt. ``put`` is ``write_stream`` with the backend's sizes.
- Memory: parts may grow (``parts_per_tier``: S3 takes 10,000 parts per object). The parts an
  upload holds, in flight and being cut, are at most ``parallel_parts x part_size`` bytes, or
  two parts once parts are larger than half of that (one is sent while the next is cut; each
  tier of parts twice as large halves the parts in flight, down to that); the part being cut
  is held twice for the moment its pieces are joined. The uploads to a storage share its
  ``upload_slots`` of parts besides.
- ``get(key)`` streams the object (a :class:`ChunkStream`); it closes itself when exhausted, and
  a caller that stops early closes it (``with closing(storage.get(key))``). A missing object
  raises :class:`~warroom.errors.NotFoundError` at once, not while iterating.
- ``stat`` raises NotFoundError for a missing object; ``delete`` and ``delete_prefix`` are
  idempotent.
- Every other failure is a :class:`~warroom.errors.StorageError`: a
  :class:`~warroom.errors.TransientStorageError` means the same call may succeed if tried
  again (the retry wrapper does); any other StorageError is permanent.
- ``copies()`` are the independent copies a read may come from, best first: ``[self]`` for one
  backend, primary then replicas for a mirror.
- ``sweep_uploads(older_than)`` removes unfinished uploads started before ``older_than``
  (a killed writer's temporary files or multipart uploads) and returns how many it removed.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator
from datetime import datetime
from os import PathLike
from typing import TYPE_CHECKING, NamedTuple, Protocol, cast

from warroom.critical import fault_point
from warroom.errors import ConfigurationError

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor
    from threading import Semaphore

__all__ = [
    "ChunkStream",
    "ObjectInfo",
    "Part",
    "PartWiseWrites",
    "Storage",
    "Upload",
    "check_key",
    "open_storage",
    "part_length",
    "write_stream",
]

MiB = 1 << 20


class ObjectInfo(NamedTuple):
    key: str
    size: int
    modified: datetime


class Part(NamedTuple):
    """One piece of an upload: ``number`` counts from 1, ``offset`` is where it starts;
    ``last`` when :func:`write_stream` knows no part follows (a writer may leave it False)."""

    number: int
    offset: int
    data: bytes
    last: bool = False


class ChunkStream(Protocol):
    """An object's bytes, in chunks; ``close`` releases it early."""

    def __iter__(self) -> Iterator[bytes]: ...

    def __next__(self) -> bytes: ...

    def close(self) -> None: ...


class Upload(Protocol):
    """One object being written; nothing is visible before :meth:`commit`.

    ``write`` may be called from several threads at once, for distinct parts in any order;
    writing a part again replaces what an earlier attempt sent. ``commit`` is called once,
    after every part was written, with the parts' total size (0 parts: an empty object).
    ``abort`` is idempotent and never raises for what it cannot clean up (the sweep will).
    """

    def write(self, part: Part) -> None: ...

    def commit(self, size: int, parts: int) -> None: ...

    def abort(self) -> None: ...


class Storage(Protocol):
    """What every backend and wrapper provides (the module docstring holds the contract)."""

    @property
    def location(self) -> str:
        """Where the repository is, safe to print (never credentials)."""
        ...

    @property
    def part_size(self) -> int:
        """How many bytes :func:`write_stream` puts in each part (each of the first
        ``parts_per_tier``)."""
        ...

    @property
    def parallel_parts(self) -> int:
        """How many parts of one object may be in flight at once."""
        ...

    @property
    def parts_per_tier(self) -> int | None:
        """How many parts of each size :func:`write_stream` cuts before it doubles the size
        (see :func:`part_length`): the fewest of one size the backend takes. None: it takes
        any number of parts, of any sizes, and every part is ``part_size``."""
        ...

    @property
    def upload_slots(self) -> Semaphore | None:
        """Shared by every upload to this storage: :func:`write_stream` takes a slot before
        it cuts a part and the slot is given back once the part is written, so all the
        objects written at once hold at most that many parts in memory (a backup writes
        several). None: each upload is bounded by its own ``parallel_parts`` only."""
        ...

    def begin(self, key: str) -> Upload: ...

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        """Store ``chunks`` atomically under ``key``; return the number of bytes stored."""
        ...

    def get(self, key: str) -> ChunkStream: ...

    def stat(self, key: str) -> ObjectInfo: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every complete object whose key starts with ``prefix``, in key order."""
        ...

    def children(self, prefix: str) -> builtins.list[str]:
        """Names directly under ``prefix/``, including those holding only unfinished writes."""
        ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object under ``prefix``, including unfinished writes."""
        ...

    def free_bytes(self) -> int | None:
        """Space left for new objects, or None when the backend cannot tell."""
        ...

    def copies(self) -> builtins.list[Storage]: ...

    def sweep_uploads(self, older_than: datetime) -> int: ...


def check_key(key: str) -> None:
    """ValueError unless ``key`` is a relative ``/``-separated path without empty, ``.`` or
    ``..`` segments."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid storage key {key!r}")


def part_length(number: int, size: int, per_tier: int | None) -> int:
    """How long part ``number`` is cut: ``size``, doubled after every ``per_tier`` parts
    (parts 1 to ``per_tier`` are ``size`` long, the next ``per_tier`` twice that ...), or
    ``size`` for every part when ``per_tier`` is None."""
    return size << (number - 1) // per_tier if per_tier else size


def _parts(chunks: Iterable[bytes], size: int, per_tier: int | None = None) -> Iterator[Part]:
    """``chunks`` regrouped into parts of exactly :func:`part_length` bytes, the last one
    shorter and marked ``last`` (a full part waits for the next chunk, or the end, to tell).
    Each byte is copied once, into its part, when the part is full; the generator keeps no
    reference to a part it handed out (``ready.pop()``), so a written part is not held while
    the next is cut."""
    pieces: list[bytes] = []
    ready: list[bytes] = []  # a full part whose successor is not known yet
    held = number = offset = 0  # number: parts handed out; offset: where the next one starts
    want = size  # how long the part being cut is (its number: number + 1 + len(ready))
    for chunk in chunks:
        if not chunk:
            continue
        if ready:
            number += 1
            yield Part(number, offset, ready.pop())
            offset += part_length(number, size, per_tier)
        while held + len(chunk) >= want:
            cut = want - held
            pieces.append(chunk[:cut])
            chunk = chunk[cut:]
            ready.append(b"".join(pieces))
            pieces, held = [], 0
            full, want = want, part_length(number + 2, size, per_tier)
            if not chunk:
                break
            number += 1
            yield Part(number, offset, ready.pop())
            offset += full
        if chunk:
            pieces.append(chunk)
            held += len(chunk)
    data = ready.pop() if ready else b"".join(pieces)
    yield Part(number + 1, offset, data, last=True)


def _write(upload: Upload, part: Part, slots: Semaphore | None = None) -> None:
    try:
        upload.write(part)
        fault_point(f"upload-part-{part.number}-written")  # the crash tests kill the writer here
    finally:
        if slots is not None:
            slots.release()


def _next_part(parts: Iterator[Part], slots: Semaphore | None) -> Part | None:
    """The next of ``parts``, cut once it holds one of ``slots`` (:func:`_write` gives it
    back); None at the end."""
    if slots is None:
        return next(parts, None)
    slots.acquire()
    try:
        part = next(parts, None)
    except BaseException:
        slots.release()
        raise
    if part is None:
        slots.release()
    return part


def write_stream(
    storage: Storage,
    key: str,
    chunks: Iterable[bytes],
    *,
    part_size: int,
    parallel: int,
    parts_per_tier: int | None = None,
) -> int:
    """Upload ``chunks`` to ``key`` as parts of :func:`part_length` bytes (``part_size``,
    doubled every ``parts_per_tier`` parts), holding at most ``parallel x part_size`` bytes of
    parts, in flight and being cut (``parallel`` parts of ``part_size``), or two parts when
    two are more than that, and no more parts than the storage's ``upload_slots`` with every
    other upload to it; return the size stored. On any failure the upload is aborted and the
    failure raised. The calling thread reads ``chunks``."""
    upload = storage.begin(key)
    size = count = 0
    try:
        if parallel <= 1:
            for part in _parts(chunks, part_size, parts_per_tier):
                _write(upload, part)
                size, count = size + len(part.data), part.number
                del part  # written: not held while the next one is cut
        else:
            parts = _parts(chunks, part_size, parts_per_tier)
            size, count = _write_parallel(
                upload, parts, storage.upload_slots, parallel, part_size, parts_per_tier
            )
        upload.commit(size, count)
    except BaseException:
        upload.abort()
        raise
    return size


def _first_done(pending: set[Future[None]]) -> tuple[set[Future[None]], set[Future[None]]]:
    """The futures of ``pending`` done (at least one, once it is), and those not yet."""
    from concurrent.futures import FIRST_COMPLETED, wait

    done, waiting = wait(pending, return_when=FIRST_COMPLETED)
    return done, waiting


def _write_parallel(
    upload: Upload,
    parts: Iterator[Part],
    slots: Semaphore | None,
    parallel: int,
    part_size: int,
    parts_per_tier: int | None,
) -> tuple[int, int]:
    """Write ``parts`` (cut as :func:`part_length` says) on up to ``parallel`` threads, each
    part cut once it holds one of ``slots``, with at most ``parallel x part_size`` bytes of
    parts held (or two parts); return their total size and count. An object of one part is
    written by the calling thread, without a pool (``wal push`` writes one such object to S3:
    importing and starting the pool cost it 4 ms)."""
    size = count = 0
    budget = parallel * part_size
    pool: ThreadPoolExecutor | None = None
    pending: set[Future[None]] = set()
    try:
        while True:
            # Parts held, the next one included: two at least, so one is sent while the next
            # is cut.
            room = max(2, budget // part_length(count + 1, part_size, parts_per_tier))
            while len(pending) >= room:
                done, pending = _first_done(pending)
                for future in done:
                    future.result()
            cut = _next_part(parts, slots)
            if cut is None:
                break
            size, count = size + len(cut.data), cut.number
            if pool is None and cut.last:  # the first part is the only one
                _write(upload, cut, slots)
                break
            if pool is None:
                from concurrent.futures import ThreadPoolExecutor

                pool = ThreadPoolExecutor(parallel, thread_name_prefix="upload")
            pending.add(pool.submit(_write, upload, cut, slots))
            del cut  # its future holds it until it is written, no longer
        for future in pending:
            future.result()
    finally:
        for future in pending:
            if future.cancel() and slots is not None:
                slots.release()  # a part that never ran gives its slot back
        if pool is not None:
            pool.shutdown()
    return size, count


class PartWiseWrites:
    """Mixin of backends and wrappers: ``put`` is :func:`write_stream` with their own sizes,
    and a single backend is its only copy."""

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        storage = cast(Storage, self)
        return write_stream(
            storage,
            key,
            chunks,
            part_size=storage.part_size,
            parallel=storage.parallel_parts,
            parts_per_tier=storage.parts_per_tier,
        )

    def copies(self) -> builtins.list[Storage]:
        return [cast(Storage, self)]


def open_storage(url: str | PathLike[str], *, short_lived: bool = False) -> Storage:
    """Open the repository at ``url``: ``s3://bucket/prefix`` (with retries of transient
    errors; ``short_lived``: for a process making a few requests, see
    :func:`~warroom.repository.s3.new_client`), ``file:///path`` or a plain directory path.
    ConfigurationError for any other scheme."""
    from pathlib import Path
    from urllib.parse import unquote, urlsplit  # here: wal push imports this module

    text = str(url)
    parts = urlsplit(text)
    if parts.scheme in ("", "file") or (len(parts.scheme) == 1 and text[1:3] == ":\\"):
        from warroom.repository.local import LocalStorage

        path = unquote(parts.path) if parts.scheme == "file" else text
        return LocalStorage(Path(path))
    if parts.scheme == "s3":
        from warroom.repository.s3 import S3Storage
        from warroom.repository.wrappers import RetryStorage

        return RetryStorage(S3Storage.from_url(text, short_lived=short_lived))
    raise ConfigurationError(
        f"unsupported storage URL scheme {parts.scheme!r} in {text!r}; "
        "use a directory path, a file:// URL or s3://bucket/prefix"
    )
