"""The :class:`Catalog`: typed reads and writes over the catalog tables.

A SQLite catalog's file is created as :mod:`warroom.storage.files` says (private, or shared
with ``WARROOM_SHARED_GROUP``; SQLite gives its ``-wal``/``-shm`` files the same mode). Every
failure is a StorageError; for a SQLite catalog, whose errors say only "disk I/O error", the
message adds what is wrong with its directory (full, read-only, not writable).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, delete, event, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from warroom.catalog import migrations, schema
from warroom.catalog.records import CheckpointRecord
from warroom.errors import ConfigurationError, StorageError
from warroom.redact import redact_url
from warroom.storage.files import make_dirs, open_new, os_reason

__all__ = ["Catalog", "open_catalog", "sqlalchemy_url"]


def sqlalchemy_url(url: str) -> str:
    """Map the URLs users write to SQLAlchemy's: ``postgresql://`` uses psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _enable_wal(cursor: Any, attempts: int = 100) -> None:
    """Switch the file to WAL (persistent; a no-op once done). Switching needs an exclusive
    lock, and SQLite refuses it at once rather than waiting when processes open a new catalog
    together, so retry for a few seconds; any other failure (a full disk) is final."""
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorname in ("SQLITE_BUSY", "SQLITE_LOCKED")
            if attempt == attempts - 1 or not busy:
                raise
            time.sleep(0.05)


SQLITE_SYNCHRONOUS = ("full", "normal", "extra")


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    """WAL, a busy timeout, and ``BEGIN IMMEDIATE`` so concurrent writers queue, not fail.
    ``synchronous=full`` (the default) makes every commit durable through a power loss;
    ``normal`` (opt-in, faster) can lose the last commits if the OS crashes."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def open_catalog(url: str) -> Catalog:
    """Connect to the catalog at ``url`` and migrate it to the newest schema. A SQLite URL may
    end in ``?synchronous=normal`` to trade durability on an OS crash for speed (see
    :func:`_configure_sqlite`)."""
    shown = redact_url(url)
    try:
        sa_url = make_url(sqlalchemy_url(url))
    except ArgumentError as exc:
        raise ConfigurationError(
            f"invalid catalog URL {shown!r}: use sqlite:///path/catalog.db or "
            "postgresql://user@host/dbname"
        ) from exc
    if sa_url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"unsupported catalog database {sa_url.get_backend_name()!r} in {shown!r}; "
            "use SQLite or PostgreSQL"
        )
    synchronous = str(sa_url.query.get("synchronous", "full")).lower()
    if sa_url.get_backend_name() == "sqlite":
        if synchronous not in SQLITE_SYNCHRONOUS:
            raise ConfigurationError(
                f"invalid synchronous={synchronous!r} in the catalog URL {shown!r}: use "
                f"{', '.join(SQLITE_SYNCHRONOUS)}"
            )
        sa_url = sa_url.difference_update_query(["synchronous"])
    if sa_url.get_backend_name() == "sqlite" and sa_url.database not in (None, "", ":memory:"):
        path = Path(sa_url.database).absolute()
        _create_sqlite_file(path)
        shown = str(path)  # what people look for: the file
    # No pre-ping: it would add a round trip to every step checkpoint. A connection that the
    # server dropped fails one transaction and the pool is invalidated and reconnects.
    engine = create_engine(sa_url)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, synchronous)
    catalog = Catalog(engine, shown)
    try:
        migrations.migrate(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise catalog.error(f"cannot open the catalog at {shown}", exc) from exc
    return catalog


def _create_sqlite_file(path: Path) -> None:
    """Create the catalog's directory and empty file with the right modes, if missing."""
    make_dirs(path.parent)
    try:
        os.close(open_new(path, shared=True))
    except FileExistsError:
        pass


def _directory_trouble(path: Path) -> str | None:
    """What keeps SQLite from writing in ``path``'s directory, if anything can be seen."""
    directory = path.absolute().parent
    try:
        fs = os.statvfs(directory)
    except OSError as exc:
        return os_reason(exc)
    if fs.f_flag & os.ST_RDONLY:
        return os_reason(OSError(errno.EROFS, ""))
    if fs.f_bavail * fs.f_frsize < 1 << 20:
        return f"{os_reason(OSError(errno.ENOSPC, ''))} ({fs.f_bavail * fs.f_frsize} bytes free)"
    if not os.access(directory, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return os_reason(OSError(errno.EACCES, ""))
    return None


class Catalog:
    """Reads and writes of the catalog. Every method is one transaction. ``location`` names it
    in messages: a SQLite catalog's absolute path, else its URL without a password."""

    def __init__(self, engine: Engine, location: str) -> None:
        self.engine = engine
        self.location = location

    def close(self) -> None:
        self.engine.dispose()

    def reopen(self) -> None:
        """Reconnect and bring the schema to the newest version again: the database that holds
        the catalog was just replaced (restored over) by one with an older catalog, or none."""
        self.engine.dispose()
        try:
            migrations.migrate(self.engine)
        except SQLAlchemyError as exc:
            raise self.error(f"cannot open the catalog at {self.location}", exc) from exc

    def error(self, what: str, exc: SQLAlchemyError) -> StorageError:
        """``<what>: <the driver's reason>``, and for SQLite why, when it shows."""
        reason = str(getattr(exc, "orig", None) or exc)
        database = self.engine.url.database
        if self.engine.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
            path = Path(str(database))
            trouble = _directory_trouble(path)
            if trouble:
                reason += f": {trouble} at {path.absolute().parent}"
        return StorageError(f"{what}: {reason}", catalog=self.location)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise self.error(f"catalog {self.location} failed", exc) from exc

    @contextmanager
    def single(self) -> Iterator[Connection]:
        """A connection for one statement, which is atomic by itself. On PostgreSQL it runs in
        autocommit: one round trip instead of three (BEGIN, statement, COMMIT)."""
        if self.engine.dialect.name != "postgresql":
            with self.transaction() as conn:
                yield conn
            return
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise self.error(f"catalog {self.location} failed", exc) from exc

    def ping(self) -> None:
        """One round trip; StorageError when the catalog cannot be reached."""
        with self.single() as conn:
            conn.execute(select(1))

    def upsert_checkpoint(self, record: CheckpointRecord) -> None:
        values = {
            "status": record.status,
            "created_at": record.created_at,
            "source": record.source,
            "source_id": record.source_id,
            "safety": record.safety,
            "size_original": record.size_original,
            "size_stored": record.size_stored,
            "checksum": record.checksum,
            "verified_at": record.verified_at,
            "details": record.details,
        }
        table = schema.checkpoints
        with self.transaction() as conn:
            changed = conn.execute(
                update(table)
                .where(table.c.type == record.type, table.c.name == record.name)
                .values(**values)
            ).rowcount
            if not changed:
                conn.execute(table.insert().values(type=record.type, name=record.name, **values))

    def get_checkpoint(self, type_: str, name: str) -> CheckpointRecord | None:
        table = schema.checkpoints
        with self.transaction() as conn:
            row = conn.execute(
                select(table).where(table.c.type == type_, table.c.name == name)
            ).first()
        return _record(row._mapping) if row else None

    def list_checkpoints(self, type_: str | None = None) -> list[CheckpointRecord]:
        table = schema.checkpoints
        query = select(table).order_by(table.c.created_at, table.c.name)
        if type_ is not None:
            query = query.where(table.c.type == type_)
        with self.transaction() as conn:
            return [_record(row._mapping) for row in conn.execute(query)]

    def set_verified(self, type_: str, name: str, status: str, at: datetime) -> None:
        table = schema.checkpoints
        with self.transaction() as conn:
            conn.execute(
                update(table)
                .where(table.c.type == type_, table.c.name == name)
                .values(status=status, verified_at=at)
            )

    def delete_checkpoint(self, type_: str, name: str) -> None:
        table = schema.checkpoints
        with self.transaction() as conn:
            conn.execute(delete(table).where(table.c.type == type_, table.c.name == name))

    def replace_checkpoints(self, type_: str, records: list[CheckpointRecord]) -> None:
        """Make the checkpoints of ``type_`` exactly ``records`` (used by catalog rebuild)."""
        table = schema.checkpoints
        with self.transaction() as conn:
            conn.execute(delete(table).where(table.c.type == type_))
            for record in records:
                values = record.to_dict() | {
                    "created_at": record.created_at,
                    "verified_at": record.verified_at,
                }
                conn.execute(table.insert().values(**values))


def _record(row: Any) -> CheckpointRecord:
    return CheckpointRecord(
        type=row["type"],
        name=row["name"],
        status=row["status"],
        created_at=row["created_at"],
        source=row["source"],
        source_id=row["source_id"],
        safety=bool(row["safety"]),
        size_original=row["size_original"],
        size_stored=row["size_stored"],
        checksum=row["checksum"],
        verified_at=row["verified_at"],
        details=row["details"] or {},
    )
