"""The SQLite engine: backups through SQLite's online backup API.

The backup API copies a consistent snapshot page by page into a temporary file (SQLite offers
no way to stream it), which is then streamed into storage as the single part ``database`` and
removed. A restore decodes the part into a temporary file beside the target, checks it with
``PRAGMA integrity_check`` and renames it into place.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable, Collection, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from warroom.database import DumpInfo, PartRecord, ReadPart, Source, WritePart
from warroom.errors import (
    ConfigurationError,
    ConflictError,
    DatabaseError,
    DatabaseUnreachableError,
    InputError,
)

__all__ = ["SqliteEngine"]

READ_CHUNK = 1 << 20
PART = "database"


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name"
    )
    return [row[0] for row in rows]


def _count(conn: sqlite3.Connection) -> dict[str, int]:
    return {
        table: conn.execute(
            f'SELECT count(*) FROM "{table.replace(chr(34), chr(34) * 2)}"'
        ).fetchone()[0]
        for table in _tables(conn)
    }


class SqliteEngine:
    """One SQLite database file."""

    scheme = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser().absolute()
        self.display = f"sqlite:///{self.path}"

    @classmethod
    def from_url(cls, url: str) -> SqliteEngine:
        parts = urlsplit(url)
        path = unquote(parts.path)
        if parts.netloc or not path or path == "/":
            raise ConfigurationError(
                f"invalid SQLite URL {url!r}: use sqlite:///relative/app.db or "
                "sqlite:////absolute/app.db"
            )
        # sqlite:///app.db is relative, sqlite:////srv/app.db absolute (SQLAlchemy's rule).
        return cls(Path(path[1:]))

    @property
    def identity(self) -> str:
        return self.display

    @property
    def database_name(self) -> str:
        return self.path.name

    def source(self) -> Source:
        resolved = f"sqlite:{self.path.resolve()}"
        return Source(id=resolved, address=resolved, label=self.display)

    def sibling(self, database_name: str) -> SqliteEngine:
        if "/" in database_name or database_name in ("", ".", ".."):
            raise InputError(f"{database_name!r} is not a file name for a SQLite database")
        return SqliteEngine(self.path.parent / database_name)

    @contextmanager
    def _open_source(self) -> Iterator[sqlite3.Connection]:
        if not self.path.is_file():
            raise DatabaseUnreachableError(
                f"SQLite database {self.path} does not exist", database=self.display
            )
        try:
            conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=30)
        except sqlite3.Error as exc:
            raise DatabaseUnreachableError(f"cannot open {self.path}: {exc}") from exc
        with closing(conn):
            yield conn

    def dump(self, write_part: WritePart, jobs: int) -> DumpInfo:
        with (
            self._open_source() as source,
            tempfile.TemporaryDirectory(prefix="warroom-sqlite-") as tmp,
        ):
            copy_path = Path(tmp) / "snapshot.db"
            try:
                with closing(sqlite3.connect(copy_path)) as copy:
                    source.backup(copy)
                    counts = _count(copy)
                    copy.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.Error as exc:
                raise DatabaseError(f"cannot back up {self.path}: {exc}") from exc
            with open(copy_path, "rb") as handle:
                write_part(PART, "file", None, iter(lambda: handle.read(READ_CHUNK), b""))
        return DumpInfo(
            server_version=sqlite3.sqlite_version,
            tool="sqlite3-backup-api",
            tool_version=sqlite3.sqlite_version,
            tables=counts,
        )

    def count_rows(self, exclude: Collection[str] = ()) -> dict[str, int]:
        with self._open_source() as conn:
            return {table: rows for table, rows in _count(conn).items() if table not in exclude}

    def ping(self) -> None:
        with self._open_source() as conn:
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.DatabaseError as exc:
                raise DatabaseUnreachableError(
                    f"{self.path} is not a SQLite database: {exc}"
                ) from exc

    def exists(self) -> bool:
        return self.path.exists()

    def owner(self) -> str | None:
        return None

    @contextmanager
    def scratch(self) -> Iterator[SqliteEngine]:
        with tempfile.TemporaryDirectory(prefix="warroom-scratch-") as tmp:
            yield SqliteEngine(Path(tmp) / "scratch.db")

    def create_empty(self, database: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def apply_properties(self, database: dict[str, Any]) -> None:
        """A SQLite file has no database-level properties beyond its contents."""

    def load(
        self,
        parts: list[PartRecord],
        read_part: ReadPart,
        jobs: int,
        dumped_with: str,
        alongside: Callable[[dict[str, int]], None] | None = None,
    ) -> None:
        fd, temp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in read_part(PART):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            with closing(sqlite3.connect(temp)) as check:
                result = check.execute("PRAGMA integrity_check").fetchone()[0]
            if result != "ok":
                raise DatabaseError(f"the restored SQLite file fails integrity_check: {result}")
            umask = os.umask(0)
            os.umask(umask)
            temp.chmod(0o666 & ~umask)
            os.replace(temp, self.path)
            if alongside is not None:
                alongside({})
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot restore into {self.path}: {exc}") from exc
        finally:
            temp.unlink(missing_ok=True)

    def _files(self) -> list[Path]:
        return [self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))]

    def drop(self) -> None:
        for path in self._files():
            path.unlink(missing_ok=True)

    def replace_with(self, staging: Any, overwrite: bool) -> None:
        """Rename the restored file over this one (its stale -wal/-shm files go first)."""
        if not overwrite:
            try:
                os.link(staging.path, self.path)  # fails if the file appeared meanwhile
            except FileExistsError as exc:
                raise ConflictError(f"{self.path} appeared during the restore; left alone") from exc
            staging.path.unlink()
            return
        for path in self._files()[1:]:
            path.unlink(missing_ok=True)
        os.replace(staging.path, self.path)
