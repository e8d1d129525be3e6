"""The WAL archive: PostgreSQL's write-ahead log segments, kept for point-in-time recovery.

Each archived file is an object of the repository (compressed, encrypted when the repository
is) and a record of its SHA-256, size and archive time, written last: the commit point (a
segment without its record is not archived). Their keys are
:mod:`warroom.repository.layout`'s (per timeline; history files apart).

With replicas, a push writes every copy before it succeeds, and a fetch uses the first copy
whose segment is intact.

Pushing is idempotent: pushing a segment that is already archived with the same content
succeeds, and pushing different content under an archived name is refused. PostgreSQL keeps a
segment until its archive command succeeds, so refusing loses nothing. This module imports
only what ``warroom wal push`` needs, because PostgreSQL runs that once per segment.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from warroom.errors import InputError, IntegrityError, NotFoundError, StorageError
from warroom.repository.layout import (
    WAL_PREFIX,
    record_key,
    restore_point_key,
    wal_history_key,
    wal_name,
    wal_probe_key,
    wal_segment_key,
)

if TYPE_CHECKING:
    from warroom.repository import Repository

__all__ = ["WalArchive", "WalSegment", "segment_lsn_range"]

WAL_NAME = re.compile(r"^([0-9A-F]{8})([0-9A-F]{16})(\.partial|\.[0-9A-F]{8}\.backup)?$")
HISTORY_NAME = re.compile(r"^[0-9A-F]{8}\.history$")
SEGMENT_SIZE = 16 * 1024 * 1024
CHUNK = 1 << 20
MAX_RECORD = 1 << 16
PUSH_THREADS = 2  # zstd workers; measured: bench/RESULTS.md, branch walpush


def segment_lsn_range(name: str, segment_size: int = SEGMENT_SIZE) -> tuple[int, int]:
    """The LSNs [start, end) a segment file covers (default 16 MiB segments)."""
    log, seg = int(name[8:16], 16), int(name[16:24], 16)
    start = (log * 0x100000000) + seg * segment_size
    return start, start + segment_size


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    try:
        return (int(high, 16) << 32) + int(low, 16)
    except ValueError as exc:
        raise InputError(
            f"invalid LSN {text!r}: write it as PostgreSQL does, e.g. 0/3000060"
        ) from exc


class WalSegment(NamedTuple):
    name: str
    sha256: str
    size: int
    archived_at: datetime


def _key(name: str) -> str:
    if HISTORY_NAME.fullmatch(name):
        return wal_history_key(name)
    match = WAL_NAME.fullmatch(name)
    if match is None:
        raise InputError(
            f"{name!r} is not a WAL file name (24 hex digits, or a .history/.backup/.partial "
            "file); use warroom wal push %p and warroom wal fetch %f %p"
        )
    return wal_segment_key(match.group(1), name)


class _FoundArchived(Exception):
    """Raised into an upload to abort it: the segment turned out to be archived already."""

    def __init__(self, recorded: WalSegment) -> None:
        super().__init__(recorded.name)
        self.recorded = recorded


class _Lookup:
    """``function()`` run on a thread of its own: :meth:`result` waits for its value, or
    raises what it raised (a thread, not :mod:`concurrent.futures`: importing it, with
    ``logging``, cost each push 4 ms)."""

    def __init__(self, function: Callable[[], WalSegment | None]) -> None:
        self._function = function
        self._value: WalSegment | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="wal-lookup", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._function()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            self._error = exc

    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self) -> None:
        self._thread.join()

    def result(self) -> WalSegment | None:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


class WalArchive:
    """Pushes, fetches and lists archived WAL files in a repository."""

    def __init__(self, repository: Repository, compression_level: int = 1) -> None:
        self.repository = repository
        self.storage = repository.storage
        self.level = compression_level

    def _recorded(self, name: str, repository: Repository | None = None) -> WalSegment | None:
        try:
            data = (repository or self.repository).get_document(record_key(_key(name)), MAX_RECORD)
        except NotFoundError:
            return None
        try:
            doc = json.loads(data)
            return WalSegment(
                name, doc["sha256"], int(doc["size"]), datetime.fromisoformat(doc["archived_at"])
            )
        except (ValueError, KeyError) as exc:
            raise IntegrityError(f"the record of archived WAL file {name} is damaged") from exc

    def push(self, path: Path) -> str:
        """Archive the file at ``path``; return "archived" or "already archived".

        The segment's record is looked up on another thread while the file is read and
        compressed (to S3 that lookup is two or three requests: the repository's key
        document, then the record), and checked before anything is committed: a segment
        found archived meanwhile is not written, its compression is wasted (a retry's cost)."""
        key = _key(path.name)
        lookup = _Lookup(lambda: self._recorded(path.name))
        try:
            return self._push(path, key, lookup)
        finally:
            lookup.join()

    def _push(self, path: Path, key: str, lookup: _Lookup) -> str:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
        if lookup.done() and (recorded := lookup.result()) is not None:
            return self._archived(recorded, data)  # answered during the read (local)

        def chunks() -> Iterator[bytes]:
            yield from (data[i : i + CHUNK] for i in range(0, len(data), CHUNK))
            recorded = lookup.result()  # before the encoder's last bytes: nothing is written
            if recorded is not None:
                raise _FoundArchived(recorded)

        # The encoder hashes the plain bytes as it compresses them (the only hash of a new
        # segment); PUSH_THREADS zstd workers compress while this thread hashes and writes.
        try:
            stored = self.repository.write(key, chunks(), level=self.level, threads=PUSH_THREADS)
        except _FoundArchived as found:
            return self._archived(found.recorded, data)
        record = {
            "sha256": stored.plain_sha256,
            "size": len(data),
            "archived_at": datetime.now(UTC).isoformat(),
            "stored_sha256": stored.stored_sha256,
        }
        self.repository.put_document(record_key(key), json.dumps(record).encode())
        return "archived"

    @staticmethod
    def _archived(recorded: WalSegment, data: bytes) -> str:
        """Return "already archived" when ``data`` is what ``recorded`` says; else refuse it
        (IntegrityError)."""
        digest = hashlib.sha256(data).hexdigest()
        if recorded.sha256 == digest:
            return "already archived"
        raise IntegrityError(
            f"WAL file {recorded.name} is already archived with different content "
            f"(sha256 {recorded.sha256[:16]}..., this one {digest[:16]}...); refusing to "
            "overwrite it. Is another cluster archiving into this repository?",
            segment=recorded.name,
        )

    def fetch(self, name: str, destination: Path) -> str:
        """Write archived file ``name`` to ``destination`` (atomically), checksum verified,
        from the first copy where it is intact; return that copy's location. NotFoundError
        when it is not archived; IntegrityError when every copy is damaged."""
        return self.repository.first_intact(lambda copy: self._fetch(copy, name, destination))

    def _fetch(self, copy: Repository, name: str, destination: Path) -> str:
        recorded = self._recorded(name, copy)
        if recorded is None:
            raise NotFoundError(f"WAL file {name} is not in the archive", segment=name)
        import tempfile

        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=f".{name}.", dir=destination.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    reading = copy.read(_key(name), label=f"archived WAL file {name}", segment=name)
                except NotFoundError as exc:
                    raise IntegrityError(
                        f"archived WAL file {name} is missing its data", segment=name
                    ) from exc
                with reading:
                    for chunk in reading:
                        out.write(chunk)
            reading.check(recorded.sha256)
            os.replace(temp_name, destination)
        finally:
            Path(temp_name).unlink(missing_ok=True)
        return copy.location

    def check(self) -> None:
        """Prove that pushes can work here, without archiving anything: store a probe object
        as a push stores a segment, read it back, and delete it."""
        key = wal_probe_key(os.urandom(8).hex())
        probe = os.urandom(256)
        self.repository.write(key, [probe], level=self.level, threads=1)
        try:
            with self.repository.read(key, label="the WAL archive's probe") as reading:
                read = b"".join(reading)
        finally:
            self.storage.delete(key)
        if read != probe:
            raise IntegrityError("the WAL archive returned other bytes than it was given")

    def record_restore_point(self, name: str, point: dict[str, object]) -> None:
        key = restore_point_key(name)
        try:
            self.storage.stat(key)
        except NotFoundError:
            self.repository.put_document(key, json.dumps(point).encode())
            return
        raise InputError(f"a restore point named {name!r} already exists; choose another name")

    def restore_point(self, name: str) -> dict[str, str]:
        try:
            data = self.repository.get_document(restore_point_key(name), MAX_RECORD)
        except NotFoundError as exc:
            raise NotFoundError(
                f"no restore point named {name!r}; create one with warroom "
                "create database --restore-point NAME"
            ) from exc
        point: dict[str, str] = json.loads(data)
        return point

    def segments(self) -> list[WalSegment]:
        """Every archived segment (not history or backup files), in WAL order."""
        found = []
        for info in self.storage.list(WAL_PREFIX):
            name = wal_name(info.key)
            match = WAL_NAME.fullmatch(name or "")
            if match and match.group(3) is None:
                recorded = self._recorded(match.group(0))
                if recorded is not None:
                    found.append(recorded)
        return sorted(found, key=lambda segment: segment.name)

    def delete_before(self, oldest_needed: str) -> list[str]:
        """Remove archived segments older than ``oldest_needed`` (record first, then data)."""
        removed = []
        for segment in self.segments():
            if segment.name[8:] < oldest_needed[8:]:
                key = _key(segment.name)
                self.storage.delete(record_key(key))
                self.storage.delete(key)
                removed.append(segment.name)
        return removed
