"""Database engines: one per URL scheme, each dumping to and loading from stored parts.

An engine never touches storage itself. :meth:`DatabaseEngine.dump` hands each part's plain
byte stream to a ``write_part`` callback (possibly from several threads at once) that encodes
and stores it; :meth:`DatabaseEngine.load` asks a ``read_part`` callback for each part's
decoded stream, whose checksum is checked as it is read. :func:`open_database` picks the engine
from the URL (``postgresql://`` or ``sqlite:///``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from warroom.errors import ConfigurationError
from warroom.redact import redact_url

__all__ = [
    "DatabaseEngine",
    "DumpInfo",
    "LoadReport",
    "PartRecord",
    "ReadPart",
    "Source",
    "WritePart",
    "open_database",
]


@dataclass(frozen=True)
class Source:
    """The database a backup came from, as retention, staleness and the UI group backups.

    ``id`` is stable for one database whatever URL reaches it: ``postgresql:<system
    identifier>/<database>`` (the server's ``pg_control_system()``, shared by a cluster and its
    copies made from base backups), or ``sqlite:<resolved path>``. ``address`` is where it was
    reached (``postgresql://host:port/database``; for SQLite the same as ``id``): the fallback
    that matches a configured URL to its backups while its server is unreachable. ``label`` is
    for people: the URL without its password. None of them ever holds a password.
    """

    id: str
    address: str
    label: str


@dataclass(frozen=True)
class PartRecord:
    """One stored part of a backup, as its manifest records it."""

    name: str
    role: str  # "schema", "data" or "file"
    plain_size: int
    plain_sha256: str
    stored_size: int
    stored_sha256: str
    table: str | None = None
    # A PostgreSQL copy part: the tables it holds, in order ({"schema", "name", "columns"}).
    copy: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "role": self.role,
            "table": self.table,
            "plain_size": self.plain_size,
            "plain_sha256": self.plain_sha256,
            "stored_size": self.stored_size,
            "stored_sha256": self.stored_sha256,
        }
        if self.copy:
            data["copy"] = list(self.copy)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartRecord:
        return cls(
            name=str(data["name"]),
            role=str(data["role"]),
            table=data.get("table"),
            plain_size=int(data["plain_size"]),
            plain_sha256=str(data["plain_sha256"]),
            stored_size=int(data["stored_size"]),
            stored_sha256=str(data["stored_sha256"]),
            copy=tuple(dict(table) for table in data.get("copy") or ()),
        )


class WritePart(Protocol):
    """``write_part(name, role, table, plain_chunks, copy=...)``: encode and store one part
    (``copy``: what :attr:`PartRecord.copy` records)."""

    def __call__(
        self,
        name: str,
        role: str,
        table: str | None,
        chunks: Iterable[bytes],
        copy: tuple[dict[str, Any], ...] = (),
    ) -> PartRecord: ...


ReadPart = Callable[[str], Iterator[bytes]]
"""``read_part(name)``: the decoded bytes of one part; raises IntegrityError if damaged."""


@dataclass
class DumpInfo:
    """What an engine learnt while dumping, recorded in the manifest."""

    server_version: str
    tool: str
    tool_version: str
    tables: dict[str, int]
    database: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadReport:
    """What a load did beyond the rows: the materialized views it refreshed."""

    matviews_refreshed: int = 0


class DatabaseEngine(Protocol):
    """One database, addressed by URL. ``display`` is the URL without its password."""

    scheme: str
    display: str

    @property
    def identity(self) -> str:
        """What two URLs of the same database share (for locks): host, port and database."""
        ...

    @property
    def database_name(self) -> str: ...

    def source(self) -> Source:
        """This database's :class:`Source`; its ``id`` falls back to ``address`` when the
        server cannot tell its identity (unreachable, or too old)."""
        ...

    def dump(self, write_part: WritePart, jobs: int) -> DumpInfo: ...

    def exists(self) -> bool: ...

    def ping(self) -> None:
        """Connect to this database and run a trivial query; raise if that fails."""
        ...

    def sibling(self, database_name: str) -> DatabaseEngine:
        """The database called ``database_name`` beside this one (same server or directory)."""
        ...

    def scratch(self) -> AbstractContextManager[DatabaseEngine]:
        """A throwaway, not yet created database beside this one, dropped on leaving."""
        ...

    def create_empty(self, database: dict[str, Any]) -> None:
        """Create this database, empty, with the recorded properties (encoding, collation)."""
        ...

    def load(
        self,
        parts: list[PartRecord],
        read_part: ReadPart,
        jobs: int,
        dumped_with: str,
        alongside: Callable[[dict[str, int]], None] | None = None,
    ) -> LoadReport:
        """Restore the parts into this (new, empty) database; ``dumped_with`` is the version of
        the tool that made them (an older restore tool is refused before anything runs).
        ``alongside`` runs once every row is loaded, while indexes and constraints build, with
        the row counts the load itself saw (``{table: rows}``, for the tables it can tell)."""
        ...

    def apply_properties(self, database: dict[str, Any]) -> None:
        """Give the restored database the recorded database-level properties."""
        ...

    def drop(self) -> None: ...

    def owner(self) -> str | None:
        """The role owning this database, where the engine has such a thing."""
        ...

    def replace_with(self, staging: DatabaseEngine, overwrite: bool) -> None:
        """Make ``staging`` (a restored sibling) become this database, atomically. With
        ``overwrite`` an existing database of this name is replaced (and dropped); without it,
        one that appeared meanwhile makes this fail and is left alone."""
        ...

    def count_rows(self, exclude: Collection[str] = ()) -> dict[str, int]:
        """Every table's row count (``{"schema.table": rows}``) but those in ``exclude``."""
        ...


def open_database(
    url: str, *, pg_bin_dir: Any = None, connect_timeout: int = 10, lock_wait_timeout: int = 600
) -> DatabaseEngine:
    """The engine for ``url``; a clear ConfigurationError for anything else."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        from warroom.database.postgres import PostgresEngine

        return PostgresEngine(
            url,
            pg_bin_dir=pg_bin_dir,
            connect_timeout=connect_timeout,
            lock_wait_timeout=lock_wait_timeout,
        )
    if scheme == "sqlite":
        from warroom.database.sqlite import SqliteEngine

        return SqliteEngine.from_url(url)
    raise ConfigurationError(
        f"unsupported database URL {redact_url(url)!r}: use postgresql://user@host:5432/dbname "
        "or sqlite:///path/to/app.db"
    )
