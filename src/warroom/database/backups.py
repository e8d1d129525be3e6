"""Database checkpoints: create, list, verify and restore backups; rebuild the catalog.

A backup is its parts, its manifest (written last) and its check records (one per
verification, see :mod:`warroom.database.verification`), at the keys
:mod:`warroom.repository.layout` gives. Nothing else makes a backup exist: a backup that fails
or is interrupted at any point is removed at once, and whatever a killed process leaves behind
has no manifest and is swept by the next backup (:meth:`BackupService.sweep_leftovers`).

Locks (the repository's :class:`~warroom.repository.Locker`: ``flock`` in ``BACKUP_DIR/.locks``
locally, leases in the bucket on S3): one per source database, so two backups of one database
never interleave, and one per checkpoint name, so a sweep never removes a backup that is still
being written. Bytes are the repository's: it encodes (and encrypts) parts, manifests and check
records, and a read uses the first copy (primary, then replicas) whose every part is intact.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, closing, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from warroom import __version__
from warroom.catalog import CheckpointRecord
from warroom.config import Settings
from warroom.database import (
    DatabaseEngine,
    LoadReport,
    PartRecord,
    Source,
    WritePart,
    open_database,
)
from warroom.database.manifest import (
    MAX_MANIFEST_BYTES,
    Manifest,
    check_source,
)
from warroom.database.verification import (
    CHECKED,
    COMPLETED,
    DAMAGED,
    RESTORE_TESTED,
    CheckRecord,
    status_of,
)
from warroom.errors import (
    ConfigurationError,
    ConflictError,
    IncompatibleBackupError,
    InputError,
    IntegrityError,
    NameTakenError,
    NotFoundError,
    StorageError,
    WarroomError,
)
from warroom.repository import Locker, Repository
from warroom.repository.layout import (
    BACKUPS,
    backup_prefix,
    check_key,
    checks_prefix,
    manifest_key,
    part_key,
    validate_name,
)

if TYPE_CHECKING:
    from warroom.catalog import Catalog

__all__ = [
    "BackupService",
    "CopiesReport",
    "CopyCheck",
    "Progress",
    "RestoreReport",
    "VerifyReport",
    "check_verify_request",
]

CHECKPOINT_TYPE = "database"
CATALOG_LABEL_WIDTH = 500  # the catalog's ``source`` column: the label, for people
# How long recording a check waits for a backup's name lock (held by a delete, which is quick).
NAME_LOCK_WAIT = 60.0


ProgressReport = Callable[[int, str, int | None], None]


class Progress:
    """Counts bytes as they flow and calls ``report(total_bytes, stage, expected_bytes)`` now
    and then; ``expected_bytes`` is the stage's total when it is known, else None.

    Thread-safe: parallel parts report into one counter. ``report`` is called at most every
    ``interval`` seconds, plus once when a stage starts.
    """

    def __init__(self, report: ProgressReport | None = None, interval: float = 0.5) -> None:
        self._report = report
        self._interval = interval
        self._lock = threading.Lock()
        self._last = 0.0
        self.total = 0
        self.stage = ""
        self.expected: int | None = None

    def start(self, stage: str, expected: int | None = None) -> None:
        with self._lock:
            self.stage, self.total, self.expected = stage, 0, expected
        if self._report:
            self._report(0, stage, expected)

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self.total += nbytes
            now = time.monotonic()
            due = now - self._last >= self._interval
            if due:
                self._last = now
            total, stage, expected = self.total, self.stage, self.expected
        if due and self._report:
            self._report(total, stage, expected)

    def counted(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.advance(len(chunk))
            yield chunk


# A backup's parts dumped at once, unless told: the schema's pg_dump reads the catalog for
# about as long as the table rows take to stream, so a second job lets them stream beside it
# (on 3,000 small tables: 1.2 s against 1.9 s with one job; on the 1.3 GB reference database
# both take under half of pg_dump -Fc's time, and two use less memory than one with its zstd
# worker). More only pays for several big tables, at the cost of the production server's CPU.
BACKUP_JOBS = 2


def parallel_jobs(jobs: int | None) -> int:
    """``jobs`` once checked; None: one per CPU this process may use (at most 16)."""
    if jobs is None:
        usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        return max(1, min(len(usable) if usable else os.cpu_count() or 1, 16))
    if jobs < 1:
        raise InputError(f"--jobs must be at least 1, not {jobs}")
    return jobs


@dataclass
class VerifyReport:
    name: str
    parts_checked: int
    bytes_checked: int
    restore_tested: bool = False
    tables_checked: int = 0
    status: str = COMPLETED
    repository: str = ""  # the copy that was read

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass(frozen=True)
class CopyCheck:
    """One repository's copy of a backup, checked: ``state`` is ``intact`` (its manifest and
    every part read and matched), ``damaged`` (``detail`` says where), ``missing`` (no
    manifest there) or ``unreachable``."""

    location: str
    state: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return self.__dict__.copy()


@dataclass(frozen=True)
class CopiesReport:
    """Every copy of backup ``name`` checked on its own (:meth:`BackupService.verify_copies`),
    primary first; :meth:`failure` is the one rule of its outcome for every face."""

    name: str
    copies: list[CopyCheck]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "copies": [copy.to_dict() for copy in self.copies]}

    def failure(self) -> WarroomError | None:
        """None when every copy is intact; else an IntegrityError (exit 3, 422) when a copy is
        damaged, or a WarroomError (exit 1) when one is missing or unreachable. Its message
        names each copy that is not intact; ``details`` are :meth:`to_dict`."""
        bad = [copy for copy in self.copies if copy.state != "intact"]
        if not bad:
            return None
        message = f"backup {self.name!r} is not intact in every repository: " + "; ".join(
            f"{copy.location}: {copy.state} ({copy.detail})" for copy in bad
        )
        damaged = any(copy.state == "damaged" for copy in bad)
        return (IntegrityError if damaged else WarroomError)(message, **self.to_dict())


def check_verify_request(*, restore_test: bool, all_copies: bool) -> None:
    """InputError when a verification asks for both: a restore test reads one copy."""
    if all_copies and restore_test:
        raise InputError(
            "--all-copies checks the checksums of every copy; run --restore-test on its own "
            "(it tests the first intact copy)"
        )


@dataclass
class RestoreReport:
    name: str
    target: str
    tables_checked: int
    rows: int
    safety_backup: str | None = None
    duration_seconds: float = 0.0
    matviews_refreshed: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _now() -> datetime:
    return datetime.now(UTC)


def _record(
    manifest: Manifest, status: str = COMPLETED, verified_at: datetime | None = None
) -> CheckpointRecord:
    return CheckpointRecord(
        type=CHECKPOINT_TYPE,
        name=manifest.name,
        status=status,
        created_at=manifest.created_at,
        source=manifest.source[:CATALOG_LABEL_WIDTH],
        source_id=manifest.source_id,
        safety=manifest.safety,
        verified_at=verified_at,
        size_original=manifest.size_original,
        size_stored=manifest.size_stored,
        checksum=manifest.checksum,
        details={
            "source_address": manifest.source_address,
            "engine": manifest.engine,
            "kind": manifest.kind,
            "database": manifest.source_database,
            "server_version": manifest.server_version,
            "tool_version": manifest.tool_version,
            "duration_seconds": manifest.duration_seconds,
            "parts": len(manifest.parts),
            "tables": len(manifest.tables),
        },
    )


def _parts_checked(count: int) -> str:
    return f"{count} part{'' if count == 1 else 's'} checked"


class BackupService:
    """Every database-checkpoint operation, over one repository and one catalog."""

    def __init__(
        self,
        settings: Settings,
        repository: Repository,
        catalog: Callable[[], Catalog],
        locker: Locker,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.settings = settings
        self.repository = repository
        self.storage = repository.storage
        self._catalog = catalog
        self.clock = clock
        self.locker = locker
        self._configured_source: tuple[str, Source] | None = None

    @property
    def catalog(self) -> Catalog:
        """The catalog, from the ``catalog`` callable given (:mod:`warroom.services` opens it on
        its first call; a call while another thread opens it waits for it)."""
        return self._catalog()

    @contextmanager
    def _catalog_alongside(self) -> Iterator[Future[Catalog]]:
        """The catalog, opening on a thread while the caller works: a backup or a restore
        records its result in it only at its end, and opening it (importing SQLAlchemy,
        migrating) takes 0.1-0.2 s of CPU that the server's work leaves free. Started once the
        caller's own start-up is done, not with the process: then both would compete for the
        interpreter. The future's ``result()`` raises what opening it raised."""
        with ThreadPoolExecutor(1, thread_name_prefix="warroom-catalog") as pool:
            yield pool.submit(self._catalog)

    # -- helpers ----------------------------------------------------------------------------

    def _engine(self, url: str) -> DatabaseEngine:
        return open_database(
            url,
            pg_bin_dir=self.settings.pg_bin_dir,
            connect_timeout=self.settings.connect_timeout,
            lock_wait_timeout=self.settings.lock_wait_timeout,
        )

    def engine_for(self, url: str | None) -> DatabaseEngine:
        """The engine of ``url``, or of DATABASE_URL."""
        return self._engine(self._source_url(url))

    def configured_source(self) -> Source | None:
        """The source of DATABASE_URL (None when it is not set). Its identity is read from the
        server once per service; while the server is unreachable it is its address."""
        url = self.settings.database_url
        if not url:
            return None
        if self._configured_source is None or self._configured_source[0] != url:
            source = self._engine(url).source()
            if source.id == source.address:  # not known yet: ask again next time
                return source
            self._configured_source = (url, source)
        return self._configured_source[1]

    def _source_url(self, url: str | None) -> str:
        url = url or self.settings.database_url
        if not url:
            raise ConfigurationError(
                "no database given: pass --url postgresql://user@host:5432/dbname "
                "(or sqlite:///path/app.db), or set DATABASE_URL"
            )
        return url

    def exists(self, name: str) -> bool:
        """Whether backup ``name`` exists (has its manifest)."""
        return self.repository.exists(manifest_key(name))

    def _write_part(
        self, backup: str, progress: Progress, threads: int, written: list[PartRecord]
    ) -> WritePart:
        """A ``write_part`` callback that stores each part and appends its record."""

        def write_part(
            name: str,
            role: str,
            table: str | None,
            chunks: Iterable[bytes],
            copy: tuple[dict[str, Any], ...] = (),
        ) -> PartRecord:
            digest = self.repository.write(
                part_key(backup, name),
                progress.counted(chunks),
                level=self.settings.compression_level,
                threads=threads,
            )
            record = PartRecord(
                name=name,
                role=role,
                table=table,
                copy=copy,
                plain_size=digest.plain_size,
                plain_sha256=digest.plain_sha256,
                stored_size=digest.stored_size,
                stored_sha256=digest.stored_sha256,
            )
            written.append(record)  # list.append is atomic: parts may finish in any thread
            return record

        return write_part

    @staticmethod
    def _missing(name: str, part: str) -> IntegrityError:
        return IntegrityError(
            f"backup {name!r} is damaged: part {part!r} is missing", name=name, part=part
        )

    def read_part(
        self, manifest: Manifest, part: str, progress: Progress, source: Repository | None = None
    ) -> Iterator[bytes]:
        """The decoded bytes of one part (from ``source``, the copy :meth:`check_stored`
        chose); IntegrityError (at the end) if they are damaged."""
        return self._reader(manifest, progress, source=source)(part)

    def _reader(
        self,
        manifest: Manifest,
        progress: Progress,
        hash_plain: bool = True,
        source: Repository | None = None,
    ) -> Callable[[str], Iterator[bytes]]:
        """Reads parts from ``source`` (a copy :meth:`check_stored` chose), or any copy."""
        parts = {part.name: part for part in manifest.parts}
        repository = source or self.repository

        def read_part(part_name: str) -> Iterator[bytes]:
            part = parts[part_name]
            try:
                reading = repository.read(
                    part_key(manifest.name, part_name),
                    label=f"{manifest.name}/{part_name}",
                    hash_plain=hash_plain,
                    name=manifest.name,
                    part=part_name,
                )
            except NotFoundError as exc:
                raise self._missing(manifest.name, part_name) from exc
            with reading:
                yield from progress.counted(reading)
            reading.check(part.plain_sha256, part.stored_sha256)

        return read_part

    # -- create -----------------------------------------------------------------------------

    def create(
        self,
        *,
        url: str | None = None,
        name: str | None = None,
        jobs: int | None = None,
        progress: Progress | None = None,
        physical: bool = False,
    ) -> Manifest:
        """Back up the database at ``url`` (default DATABASE_URL) as checkpoint ``name``,
        ``jobs`` parts at a time (default :data:`BACKUP_JOBS`); ``physical``: a base backup of
        the whole PostgreSQL cluster, for point-in-time recovery."""
        jobs = BACKUP_JOBS if jobs is None else parallel_jobs(jobs)
        engine = self._engine(self._source_url(url))
        if physical and not engine.supports_physical_backups:
            raise InputError(
                "--physical backups are for PostgreSQL; SQLite backups are always complete copies"
            )
        return self._create(engine, name, jobs, progress, physical)

    def _create(
        self,
        engine: DatabaseEngine,
        name: str | None,
        jobs: int,
        progress: Progress | None,
        physical: bool = False,
        safety: bool = False,
    ) -> Manifest:
        """Back up ``engine`` as ``name``; ``safety``: of a restore's target, before it is
        replaced (recorded in the manifest; retention keeps such backups by their own rule)."""
        started = self.clock()
        progress = progress or Progress()
        with ExitStack() as locks:
            locks.enter_context(
                self.locker.hold(f"source:{engine.identity}", f"a backup of {engine.display}")
            )
            if name is None:
                name = self._claim_free_name(locks, f"db-{started:%Y%m%dT%H%M%SZ}")
            else:
                locks.enter_context(self.locker.hold(f"name:{name}", f"a backup named {name!r}"))
                if self.exists(name):
                    raise NameTakenError(
                        f"a backup named {name!r} already exists; choose another --name",
                        name=name,
                    )
            source = check_source(engine.source())
            self.sweep_leftovers()
            progress.start(f"backing up {engine.display}")
            # One zstd worker beside the reading thread: more workers buy little on a
            # dump-bound stream and each costs tens of MB of buffers.
            threads = 1 if jobs == 1 else 0
            written: list[PartRecord] = []
            try:
                with self._catalog_alongside() as opening:
                    write_part = self._write_part(name, progress, threads, written)
                    if physical:
                        info = engine.base_backup(write_part)
                    else:
                        info = engine.dump(write_part, jobs)
                    catalog = opening.result()  # opened, or the backup fails and is removed
                parts = sorted(written, key=lambda part: part.name)
                manifest = Manifest(
                    name=name,
                    engine=engine.scheme,
                    kind="physical" if physical else "logical",
                    created_at=started,
                    completed_at=self.clock(),
                    source=engine.display,
                    source_database=engine.database_name,
                    server_version=info.server_version,
                    tool=info.tool,
                    tool_version=info.tool_version,
                    codec=["zstd"],
                    parts=parts,
                    tables=info.tables,
                    database=info.database,
                    warroom_version=__version__,
                    source_id=source.id,
                    source_address=source.address,
                    safety=safety,
                )
                self.repository.put_document(manifest_key(name), manifest.to_json())
            except BaseException:
                with suppress(WarroomError):  # the original failure is the one to report
                    self.storage.delete_prefix(backup_prefix(name))
                raise
        catalog.upsert_checkpoint(_record(manifest))
        return manifest

    def _claim_free_name(self, locks: ExitStack, base: str) -> str:
        """Lock the first of ``base``, ``base-2``, ... that no backup has or is writing
        (backups of several databases started in the same second get distinct names)."""
        for candidate in [base, *(f"{base}-{n}" for n in range(2, 100))]:
            lock = self.locker.hold(f"name:{candidate}", f"a backup named {candidate!r}")
            try:
                lock.__enter__()
            except ConflictError:
                continue  # another backup is writing it
            if self.exists(candidate):
                lock.__exit__(None, None, None)
                continue
            locks.push(lock.__exit__)
            return candidate
        raise ConflictError(f"no free backup name starting with {base!r}; pass --name")

    # -- read -------------------------------------------------------------------------------

    def list_backups(self) -> list[CheckpointRecord]:
        return self.catalog.list_checkpoints(CHECKPOINT_TYPE)

    def manifest(self, name: str) -> Manifest:
        """The manifest of backup ``name``, from storage (the truth, not the catalog)."""
        validate_name(name)
        try:
            data = self.repository.get_document(manifest_key(name), MAX_MANIFEST_BYTES)
        except NotFoundError as exc:
            raise NotFoundError(
                f"no database checkpoint named {name!r} in {self.storage.location}; "
                "`warroom list --type database` shows the ones there are",
                name=name,
            ) from exc
        return Manifest.from_json(name, data)

    def check_stored(self, manifest: Manifest, progress: Progress | None = None) -> Repository:
        """Compare every part's stored bytes with the manifest without decoding (fast: a
        replaced part is refused before any of it is decompressed), on each copy in turn
        until one is intact; return that copy (the first copy's damage when none is)."""
        return self.repository.first_intact(lambda copy: self._check_copy(copy, manifest, progress))

    def _check_copy(
        self, copy: Repository, manifest: Manifest, progress: Progress | None
    ) -> Repository:
        """``copy`` once every part's stored bytes match the manifest; else IntegrityError for
        the first damaged part in the manifest's order. Parts are read one per CPU at once
        (SHA-256 runs outside the GIL, and an object store serves several reads at once); a
        failure or Ctrl-C stops the others at their next chunk."""
        stop = threading.Event()
        with ThreadPoolExecutor(parallel_jobs(None), thread_name_prefix="warroom-check") as pool:
            checks = [
                pool.submit(self._check_part, copy, manifest.name, part, progress, stop)
                for part in manifest.parts
            ]
            try:
                for check in checks:
                    check.result()
            finally:
                stop.set()
        return copy

    def _check_part(
        self,
        copy: Repository,
        name: str,
        part: PartRecord,
        progress: Progress | None,
        stop: threading.Event,
    ) -> None:
        """IntegrityError unless part ``part`` of backup ``name`` in ``copy`` has its recorded
        size and SHA-256 (unchecked when ``stop`` is set before its end)."""
        digest, size = hashlib.sha256(), 0
        try:
            stored = copy.stored(part_key(name, part.name))
        except NotFoundError as exc:
            raise self._missing(name, part.name) from exc
        with closing(stored) as stream:
            for chunk in progress.counted(stream) if progress else stream:
                if stop.is_set():
                    return
                digest.update(chunk)
                size += len(chunk)
                if size > part.stored_size:
                    break
        if size != part.stored_size or digest.hexdigest() != part.stored_sha256:
            raise IntegrityError(
                f"backup {name!r} is damaged: part {part.name!r} "
                + (
                    f"is {'longer' if size > part.stored_size else 'shorter'} than the "
                    f"{part.stored_size} bytes recorded"
                    if size != part.stored_size
                    else "does not match its checksum"
                ),
                name=name,
                part=part.name,
            )

    def check_present(self, manifest: Manifest, copy: Repository | None = None) -> None:
        """Every part is there with its recorded size (no byte is read), in ``copy`` or any
        copy."""
        storage = (copy or self.repository).storage
        for part in manifest.parts:
            try:
                size = storage.stat(part_key(manifest.name, part.name)).size
            except NotFoundError:
                raise IntegrityError(
                    f"backup {manifest.name!r} is damaged: part {part.name!r} is missing",
                    name=manifest.name,
                    part=part.name,
                ) from None
            if size != part.stored_size:
                raise IntegrityError(
                    f"backup {manifest.name!r} is damaged: part {part.name!r} is {size} bytes, "
                    f"the manifest recorded {part.stored_size}",
                    name=manifest.name,
                    part=part.name,
                )

    def copies_of(self, manifest: Manifest) -> dict[str, str]:
        """Per repository (primary, then replicas): ``present`` when its manifest and every
        part with its recorded size are there (no byte is read), ``damaged`` when some part
        is not, ``missing`` without its manifest."""
        states = {}
        for copy in self.repository.copies():
            state = "present"
            try:
                if not copy.exists(manifest_key(manifest.name)):
                    state = "missing"
                else:
                    self.check_present(manifest, copy)
            except IntegrityError:
                state = "damaged"
            except WarroomError:
                state = "unreachable"
            states[copy.location] = state
        return states

    def verify_copies(self, name: str, progress: Progress | None = None) -> CopiesReport:
        """Check every copy of backup ``name`` (primary, then replicas) on its own, as
        :meth:`verify` checks the one it reads: its manifest, then every part's stored and
        decoded checksums. Nothing is recorded (the backup stays restorable from an intact
        copy); a copy whose manifest differs from the first copy's is damaged."""
        progress = progress or Progress()
        validate_name(name)
        checks: list[CopyCheck] = []
        reference: tuple[str, str] | None = None  # where the first readable manifest is, its sum
        for copy in self.repository.copies():
            try:
                data = copy.get_document(manifest_key(name), MAX_MANIFEST_BYTES)
                manifest = Manifest.from_json(name, data)
                reference = reference or (copy.location, manifest.checksum)
                if manifest.checksum != reference[1]:
                    raise IntegrityError(
                        f"backup {name!r} is damaged: its manifest differs from the one in "
                        f"{reference[0]}",
                        name=name,
                    )
                progress.start(f"checking {name} in {copy.location}", manifest.size_stored)
                self._check_copy(copy, manifest, progress)
                progress.start(f"verifying {name} in {copy.location}", manifest.size_original)
                read_part = self._reader(manifest, progress, source=copy)
                for part in manifest.parts:
                    for _chunk in read_part(part.name):
                        pass
            except NotFoundError:
                checks.append(
                    CopyCheck(
                        copy.location, "missing", "no manifest there: warroom repo sync copies it"
                    )
                )
            except IntegrityError as exc:
                checks.append(CopyCheck(copy.location, "damaged", exc.message))
            except StorageError as exc:
                checks.append(CopyCheck(copy.location, "unreachable", exc.message))
            else:
                intact = _parts_checked(len(manifest.parts))
                checks.append(CopyCheck(copy.location, "intact", intact))
        return CopiesReport(name, checks)

    # -- check records ----------------------------------------------------------------------

    def checks(self, name: str) -> list[CheckRecord]:
        """The verification records of backup ``name`` in the repository, oldest first
        (records that are not sane are left out)."""
        records = []
        for info in self.storage.list(checks_prefix(name)):
            record = CheckRecord.from_json(name, self.repository.get_document(info.key, 1 << 16))
            if record is not None:
                records.append(record)
        return sorted(records, key=lambda record: record.at)

    def _record_check(
        self, name: str, result: str, detail: str = "", manifest: Manifest | None = None
    ) -> str:
        """Write a check record beside the backup and bring its catalog row up to date;
        return the backup's status. Under the backup's name lock, as :meth:`delete` works: a
        check that ends after a cleanup deleted the backup records nothing (NotFoundError),
        rather than leave a record in a directory of its own and a catalog row for a backup
        that no longer exists."""
        with self.locker.hold(
            f"name:{name}", f"a backup named {name!r}", wait_seconds=NAME_LOCK_WAIT
        ):
            if not self.exists(name):
                raise NotFoundError(
                    f"backup {name!r} was deleted while it was being checked; nothing was recorded",
                    name=name,
                )
            at = self.clock()
            record = CheckRecord(name, result, at, detail)
            self.repository.put_document(check_key(name, at), record.to_json())
            status, verified_at = status_of(self.checks(name), at)
            if self.catalog.get_checkpoint(CHECKPOINT_TYPE, name) is not None:
                self.catalog.set_verified(CHECKPOINT_TYPE, name, status, verified_at or at)
            elif manifest is not None:
                self.catalog.upsert_checkpoint(_record(manifest, status, verified_at))
            return status

    def _damaged(self, name: str, error: IntegrityError) -> None:
        """Record that a check of backup ``name`` found it damaged (if it still exists)."""
        with suppress(NotFoundError):
            self._record_check(name, DAMAGED, error.message)

    # -- verify -----------------------------------------------------------------------------

    def verify(
        self,
        name: str,
        *,
        restore_test: bool = False,
        url: str | None = None,
        jobs: int | None = None,
        progress: Progress | None = None,
    ) -> VerifyReport:
        """Re-read every part and check its stored, then its decoded checksum (``checked``);
        with ``restore_test``, also restore into a scratch database and compare every table's
        row count with the one recorded at backup time (``restore-tested``). The result is
        recorded beside the backup; a damaged backup raises IntegrityError, recorded too."""
        jobs = parallel_jobs(jobs)
        progress = progress or Progress()
        try:
            manifest = self.manifest(name)
            if restore_test and manifest.kind == "physical":
                raise InputError(
                    f"{name} is a physical base backup: test it with a point-in-time restore "
                    "(warroom restore database --target-time latest --data-dir DIR --start)"
                )
            progress.start(f"checking the stored bytes of {name}", manifest.size_stored)
            source = self.check_stored(manifest, progress)
            progress.start(f"verifying {name}", manifest.size_original)
            read_part = self._reader(manifest, progress, source=source)
            for part in manifest.parts:
                for _chunk in read_part(part.name):
                    pass
            report = VerifyReport(
                name, len(manifest.parts), manifest.size_original, repository=source.location
            )
            if restore_test:
                server = self._engine(url or self.settings.database_url or manifest.source)
                self._check_compatible(manifest, server)
                self._sweep_abandoned(server, progress)
                progress.start(f"restore test of {name}", manifest.size_original)
                with server.scratch() as scratch:
                    report.tables_checked, _ = self._restore_into(
                        scratch, manifest, manifest.database, progress, jobs, source
                    )
                report.restore_tested = True
        except IntegrityError as exc:
            self._damaged(name, exc)
            raise
        report.status = self._record_check(
            name,
            RESTORE_TESTED if restore_test else CHECKED,
            _parts_checked(report.parts_checked)
            + (f", {report.tables_checked} tables restored and compared" if restore_test else ""),
            manifest,
        )
        return report

    def _restore_into(
        self,
        target: DatabaseEngine,
        manifest: Manifest,
        database: dict[str, Any],
        progress: Progress,
        jobs: int,
        source: Repository,
    ) -> tuple[int, LoadReport]:
        """What a restore and a restore test both do: create ``target`` with ``database``'s
        properties, load the backup from ``source`` into it, compare every table's row count
        with the one recorded at backup time (while the indexes build), then apply the
        database's other properties. Return the tables checked and what the load did."""
        target.create_empty(database)
        checked: dict[str, int] = {}

        def count(loaded: dict[str, int]) -> None:
            checked["tables"] = self._check_rows(manifest, target, loaded)

        load = target.load(
            manifest.parts,
            self._reader(manifest, progress, hash_plain=False, source=source),
            jobs,
            manifest.tool_version,
            alongside=count,
        )
        target.apply_properties(database)
        return checked["tables"], load

    @staticmethod
    def _check_rows(manifest: Manifest, restored: DatabaseEngine, loaded: dict[str, int]) -> int:
        """Compare every table's rows with the backup's: ``loaded`` as the load counted them,
        the other tables counted now."""
        counts = {**restored.count_rows(exclude=loaded), **loaded}
        wrong = {
            table: (expected, counts.get(table))
            for table, expected in manifest.tables.items()
            if counts.get(table) != expected
        }
        if wrong:
            listing = ", ".join(
                f"{table}: {got} rows, backup recorded {expected}"
                for table, (expected, got) in sorted(wrong.items())
            )
            raise IntegrityError(
                f"backup {manifest.name!r} restored with wrong row counts: {listing}",
                name=manifest.name,
                tables=sorted(wrong),
            )
        return len(manifest.tables)

    @staticmethod
    def _check_compatible(manifest: Manifest, target: DatabaseEngine) -> None:
        if manifest.engine != target.scheme:
            raise IncompatibleBackupError(
                f"backup {manifest.name!r} is a {manifest.engine} backup and cannot be restored "
                f"into {target.display} ({target.scheme}); restore it into a {manifest.engine} "
                "database",
                name=manifest.name,
            )

    # -- restore ----------------------------------------------------------------------------

    def restore(
        self,
        name: str,
        *,
        new_db: str | None = None,
        target_url: str | None = None,
        confirm: bool = False,
        url: str | None = None,
        jobs: int | None = None,
        progress: Progress | None = None,
    ) -> RestoreReport:
        """Restore backup ``name`` into a new database (``new_db``, on the server of ``url``,
        DATABASE_URL or the backup's source) or over ``target_url`` (needs ``confirm``; a safety
        backup of the target is taken first). Every part is checked before anything is touched;
        the target is replaced only once the restore is complete and its row counts match.
        ``jobs`` parts load at once (default: one per CPU)."""
        if (new_db is None) == (target_url is None):
            raise InputError("give exactly one target: --new-db NAME or --target-url URL")
        jobs = parallel_jobs(jobs)
        if target_url is not None and not confirm:
            raise InputError(
                "restoring over an existing database replaces all of its data; "
                "add --yes to confirm (a safety backup of it is taken first)"
            )
        progress = progress or Progress()
        manifest = self.manifest(name)
        if manifest.kind == "physical":
            raise InputError(
                f"{name} is a physical base backup: restore it to a point in time with "
                "warroom restore database --target-time T --data-dir DIR"
            )
        if new_db is not None:
            server = self._engine(url or self.settings.database_url or manifest.source)
            target = server.sibling(new_db)
        else:
            assert target_url is not None
            target = self._engine(target_url)
        self._check_compatible(manifest, target)
        progress.start(f"checking {name}", manifest.size_stored)
        try:
            source = self.check_stored(manifest, progress)
        except IntegrityError as exc:
            self._damaged(name, exc)
            raise
        progress.start(f"restoring {name} from {source.location}")
        with self.locker.hold(f"restore:{target.identity}", f"a restore into {target.display}"):
            report = self._restore_locked(
                manifest, target, new_db is not None, progress, jobs, source
            )
        report.details["repository"] = source.location
        return report

    def _restore_locked(
        self,
        manifest: Manifest,
        target: DatabaseEngine,
        must_be_new: bool,
        progress: Progress,
        jobs: int,
        source: Repository,
    ) -> RestoreReport:
        started = time.monotonic()
        replace = target.exists()
        if replace and must_be_new:
            raise NameTakenError(
                f"database {target.display} already exists; choose another --new-db name, "
                "or restore over it with --target-url URL --yes",
                target=target.display,
            )
        database = dict(manifest.database)
        safety: Manifest | None = None
        if replace:
            label = re.sub(r"[^A-Za-z0-9._-]+", "-", target.database_name)[:40]
            safety_name = f"safety-{label}-{self.clock():%Y%m%dT%H%M%S%fZ}"
            safety = self._create(target, safety_name, jobs, progress, safety=True)
            database["owner"] = target.owner()
        # Always restore under a fresh name of our own, then rename: an interrupted restore
        # never leaves a half-loaded database under the name the user asked for.
        self._sweep_abandoned(target, progress)
        staging = target.sibling(f"warroom_restore_{uuid.uuid4().hex[:12]}")
        progress.start(f"restoring {manifest.name} into {target.display}", manifest.size_original)
        try:
            with self._catalog_alongside() as opening:
                tables, load = self._restore_into(
                    staging, manifest, database, progress, jobs, source
                )
                catalog = opening.result()  # it records the restore: opened, or the target stays
            target.replace_with(staging, overwrite=replace)
        except BaseException:
            with suppress(WarroomError):  # the original failure is the one to report
                staging.drop()
            raise
        self._reindex_after_restore(catalog, manifest, safety)
        return RestoreReport(
            name=manifest.name,
            target=target.display,
            tables_checked=tables,
            rows=sum(manifest.tables.values()),
            safety_backup=safety.name if safety else None,
            duration_seconds=round(time.monotonic() - started, 3),
            matviews_refreshed=load.matviews_refreshed,
        )

    @staticmethod
    def _sweep_abandoned(server: DatabaseEngine, progress: Progress) -> None:
        """Drop the staging and scratch databases that killed restores left on the server."""
        for name in server.sweep_abandoned():
            progress.start(f"dropped {name}, left by an interrupted restore")

    @staticmethod
    def _reindex_after_restore(
        catalog: Catalog, restored: Manifest, safety: Manifest | None
    ) -> None:
        """The catalog may live in the database just replaced: reopen it, and make sure the
        restored backup and the safety backup are both indexed."""
        catalog.reopen()
        for manifest in filter(None, (restored, safety)):
            if catalog.get_checkpoint(CHECKPOINT_TYPE, manifest.name) is None:
                catalog.upsert_checkpoint(_record(manifest))

    # -- maintenance ------------------------------------------------------------------------

    def delete(self, name: str) -> None:
        """Delete a backup: catalog row, then manifest (it no longer exists), then its parts.
        Interrupted anywhere, nothing is left that lists but cannot restore."""
        with self.locker.hold(f"name:{validate_name(name)}", f"a backup named {name!r}"):
            self.catalog.delete_checkpoint(CHECKPOINT_TYPE, name)
            self.storage.delete(manifest_key(name))
            self.storage.delete_prefix(backup_prefix(name))

    def names_on(self, copy: Repository) -> set[str]:
        """The backups whose manifest is in ``copy`` (one of :meth:`Repository.copies`)."""
        names = set()
        for name in copy.storage.children(BACKUPS):
            try:
                validate_name(name)
            except InputError:
                continue
            if copy.exists(manifest_key(name)):
                names.add(name)
        return names

    def delete_from(self, name: str, copy: Repository) -> None:
        """Delete backup ``name`` from ``copy`` only (that repository's own retention):
        manifest, then parts. Its catalog row stays, for the copies that still hold it."""
        with self.locker.hold(f"name:{validate_name(name)}", f"a backup named {name!r}"):
            copy.storage.delete(manifest_key(name))
            copy.storage.delete_prefix(backup_prefix(name))

    def sweep_leftovers(self) -> list[str]:
        """Remove backups that have no manifest and that no running backup is writing."""
        removed = []
        for name in self.storage.children(BACKUPS):
            try:
                validate_name(name)
            except InputError:
                continue
            if self.exists(name):
                continue
            with self.locker.try_hold(f"name:{name}") as free:
                if free and not self.exists(name):
                    self.storage.delete_prefix(backup_prefix(name))
                    removed.append(name)
        return removed

    def rebuild_catalog(
        self, check: bool = False, progress: Progress | None = None
    ) -> tuple[int, list[str]]:
        """Re-index every backup from the repository alone; return (indexed, problems).

        Each backup's status comes from its check records, after making sure every part is
        there with its recorded size (a missing or truncated part makes it ``damaged``, and is
        recorded); ``check`` also re-reads every part's checksum, as ``verify`` does. A backup
        is never promoted past what was proved. A manifest that cannot be read within its
        bounds is reported and skipped; the others are indexed all the same."""
        progress = progress or Progress()
        records, problems = [], []
        for name in self.storage.children(BACKUPS):
            try:
                validate_name(name)
                if not self.exists(name):
                    continue
                manifest = self.manifest(name)
            except (IntegrityError, InputError) as exc:
                problems.append(f"{name}: {exc.message}")
                continue
            progress.start(f"re-indexing {name}", manifest.size_stored if check else None)
            try:
                self.check_present(manifest)
                if check:
                    self.check_stored(manifest, progress)
                    self._record_check(name, CHECKED, f"{len(manifest.parts)} parts (rebuild)")
            except IntegrityError as exc:
                if status_of(self.checks(name), self.clock())[0] != DAMAGED:
                    self._damaged(name, exc)
                problems.append(f"{name}: {exc.message}")
            except NotFoundError:
                continue  # deleted (by a cleanup) while it was re-indexed
            status, verified_at = status_of(self.checks(name), self.clock())
            records.append(_record(manifest, status, verified_at))
        self.catalog.replace_checkpoints(CHECKPOINT_TYPE, records)
        return len(records), problems
