"""The SQLite engine: backups through SQLite's online backup API.

The backup API copies a consistent snapshot page by page into a temporary file (SQLite offers
no way to stream it), which is then streamed into storage as the single part ``database`` and
removed. A restore decodes the part into a staging file beside the target and checks it with
``PRAGMA integrity_check``.

Over an existing target the staging file is copied *into* the live target through the backup
API, not renamed over it. The copy is one SQLite write transaction of the target, so at every
instant, killed or not, the target is either its old self (with every row committed before,
including those still in its ``-wal``) or the restored database; it keeps its inode, owner and
mode (a 0600 file of the application's user stays so when root restores; SQLite gives the
``-wal``/``-shm`` files it creates the database's owner and mode); and the application's open
connections see the restored data instead of writing on into a replaced file. A rename could
do none of that: the old ``-wal`` holds committed rows that belong to the old file only.

Staging files (``warroom_restore_<hex>`` and what SQLite and the load put beside them) are
claimed (:func:`~warroom.locks.try_claim`, a ``.claim`` file) from before they exist until they
are gone; creating one first sweeps the directory's staging files whose claim no live process
holds, those of killed restores.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from warroom.critical import fault_point
from warroom.database import (
    DumpInfo,
    LoadReport,
    PartRecord,
    ReadPart,
    Source,
    WalServer,
    WritePart,
)
from warroom.errors import (
    ConfigurationError,
    ConflictError,
    DatabaseError,
    DatabaseUnreachableError,
    InputError,
)
from warroom.locks import try_claim

__all__ = ["SqliteEngine"]

READ_CHUNK = 1 << 20
PART = "database"
# The staging files restores create (see the module docstring), and every file of one: the
# database, SQLite's companions, the load's temporary file and the claim.
WORK_FILE = re.compile(r"^warroom_restore_[0-9a-f]{12}$")
WORK_ENTRY = re.compile(r"^\.?(warroom_restore_[0-9a-f]{12})(?:-wal|-shm|-journal|\..+)?$")
CLAIM_SUFFIX = ".claim"
COPY_STEP_PAGES = 256  # pages per step of the copy into a live target


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
    supports_physical_backups = False

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser().absolute()
        self.display = f"sqlite:///{self.path}"
        self._claim: ExitStack | None = None

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

    def base_backup(self, write_part: WritePart) -> DumpInfo:
        """SQLite has no physical backups: every backup is a complete copy."""
        raise InputError(
            "--physical backups are for PostgreSQL; SQLite backups are always complete copies"
        )

    def archiving_status(self) -> dict[str, Any] | None:
        """A SQLite file archives no WAL."""
        return None

    def wal_server(self) -> WalServer | None:
        return None

    def exists(self) -> bool:
        return self.path.exists()

    def owner(self) -> str | None:
        return None

    @contextmanager
    def scratch(self) -> Iterator[SqliteEngine]:
        with tempfile.TemporaryDirectory(prefix="warroom-scratch-") as tmp:
            yield SqliteEngine(Path(tmp) / "scratch.db")

    def create_empty(self, database: dict[str, Any]) -> None:
        """Make sure the directory exists; for a staging file, claim it (a restore sweeps the
        directory's abandoned ones first: :meth:`sweep_abandoned`)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if WORK_FILE.match(self.path.name) and self._claim is None:
            claim = ExitStack()
            if not claim.enter_context(try_claim(self._claim_path(self.path.name))):
                raise ConflictError(f"{self.path} is in use by another restore")
            self._claim = claim

    def _claim_path(self, work_name: str) -> Path:
        return self.path.parent / (work_name + CLAIM_SUFFIX)

    def _work_files(self, work_name: str) -> list[Path]:
        """The files of staging file ``work_name`` in this directory, but its claim."""
        return [
            entry
            for entry in self.path.parent.iterdir()
            if (match := WORK_ENTRY.match(entry.name))
            and match.group(1) == work_name
            and entry.name != work_name + CLAIM_SUFFIX
        ]

    def sweep_abandoned(self) -> list[str]:
        """Remove the staging files beside this one whose restore was killed; return their
        names. A missing directory holds none."""
        if not self.path.parent.is_dir():
            return []
        names = {m.group(1) for e in self.path.parent.iterdir() if (m := WORK_ENTRY.match(e.name))}
        removed = []
        for name in sorted(names - {self.path.name}):
            with try_claim(self._claim_path(name)) as free:
                if free:
                    for path in self._work_files(name):
                        path.unlink(missing_ok=True)
                    removed.append(name)
        return removed

    def apply_properties(self, database: dict[str, Any]) -> None:
        """A SQLite file has no database-level properties beyond its contents."""

    def load(
        self,
        parts: list[PartRecord],
        read_part: ReadPart,
        jobs: int,
        dumped_with: str,
        alongside: Callable[[dict[str, int]], None] | None = None,
    ) -> LoadReport:
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
        return LoadReport()

    def drop(self) -> None:
        """Remove the database and SQLite's companion files (a staging file: all of its files,
        then its claim)."""
        if self._claim is not None:
            for path in self._work_files(self.path.name):
                path.unlink(missing_ok=True)
            self._claim.close()
            self._claim = None
            return
        for suffix in ("", "-wal", "-shm", "-journal"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)

    def replace_with(self, staging: Any, overwrite: bool) -> None:
        """Make ``staging`` this database: a new file is linked into place (refused if one
        appeared meanwhile); an existing one gets the staging file's pages copied into it in
        one transaction (see the module docstring). The staging file is removed."""
        if not overwrite:
            try:
                os.link(staging.path, self.path)  # fails if the file appeared meanwhile
            except FileExistsError as exc:
                raise ConflictError(f"{self.path} appeared during the restore; left alone") from exc
        else:
            self._copy_from(staging.path)
        staging.drop()

    def _copy_from(self, source_path: Path) -> None:
        def copying(_status: int, remaining: int, _total: int) -> None:
            if remaining:
                fault_point("sqlite-copy")  # inside the copy: pages written, no commit yet

        try:
            with (
                closing(sqlite3.connect(source_path)) as source,
                closing(sqlite3.connect(self.path, timeout=30)) as target,
            ):
                page_size = target.execute("PRAGMA page_size").fetchone()[0]
                wal = target.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
                if wal and source.execute("PRAGMA page_size").fetchone()[0] != page_size:
                    # The backup API cannot change a WAL database's page size: match it first.
                    source.execute(f"PRAGMA page_size={int(page_size)}")
                    source.execute("VACUUM")
                source.backup(target, pages=COPY_STEP_PAGES, progress=copying)
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot restore into {self.path}: {exc}") from exc
