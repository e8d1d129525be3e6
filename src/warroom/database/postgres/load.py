"""Logical restores, in parallel, into a new empty database.

A restore runs the schema's pre-data section (a schema of many tables in ``jobs`` sessions at
once, by a plan of :mod:`.predata`), loads the data parts ``jobs`` at a time (each copy part in
one transaction; a table with a part of its own truncated and its rows written frozen), builds
the indexes and constraints of each table that has a part of its own as soon as its rows are
in, then the rest of post-data (the small tables' indexes, foreign keys, ...) with
``pg_restore --jobs``; last, the sequences' values are set and the materialized views
refreshed. Backups of manifest format 1 (table data in pg_dump archives) restore through
``pg_restore``. :meth:`LogicalLoad.apply_properties` gives the database the recorded
database-level properties (comment, connection limit, privileges, settings).
"""

from __future__ import annotations

import logging
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE
from typing import Any

from psycopg import sql

from warroom.database import LoadReport, PartRecord, ReadPart
from warroom.database.pgcopy import (
    CopyTable,
    TableFrames,
    copy_in_statement,
    session_settings,
)
from warroom.database.pgtools import PgTool, ProcessGroup, run_parallel
from warroom.database.postgres.connection import MAINTENANCE_DB, PostgresConnection
from warroom.database.postgres.dump import MATVIEWS_PART, SEQUENCES_PART
from warroom.database.postgres.predata import PreDataPlan, plan_pre_data, worth_planning
from warroom.errors import (
    ConfigurationError,
    DatabaseError,
    IntegrityError,
)

__all__ = ["DATABASE_PRIVILEGES", "LIST_SETTINGS", "LogicalLoad", "split_list_setting"]

log = logging.getLogger("warroom.database")

DATABASE_PRIVILEGES = {"CONNECT", "CREATE", "TEMPORARY"}
# Settings whose value is a list, stored with each item double-quoted where it needs it
# (PostgreSQL's GUC_LIST_QUOTE): restored item by item, as pg_dumpall does.
LIST_SETTINGS = {
    "search_path",
    "temp_tablespaces",
    "local_preload_libraries",
    "session_preload_libraries",
    "shared_preload_libraries",
    "unix_socket_directories",
}
_LIST_ITEM = re.compile(r'\s*(?:"((?:[^"]|"")*)"|([^\s,"]+))\s*(,|$)')


def split_list_setting(value: str) -> list[str]:
    """The items of a stored list setting (PostgreSQL's SplitGUCList): ``"it's", "a,b", x``
    is ``["it's", "a,b", "x"]``; ``""`` is one empty item. ValueError if it is malformed."""
    items: list[str] = []
    position = 0
    while value[position:].strip():
        match = _LIST_ITEM.match(value, position)
        if match is None:
            raise ValueError(f"not a list setting: {value!r}")
        quoted, bare, separator = match.groups()
        items.append(bare if quoted is None else quoted.replace('""', '"'))
        position = match.end()
        if not separator:
            break
    return items


# "1234; 1259 16400 INDEX public orders_pkey postgres": dump id, catalog ids, type, schema,
# the name (for a constraint or trigger: "table name"), owner.
_LIST_ENTRY = re.compile(r"^\d+; \d+ \d+ (INDEX|CONSTRAINT|TRIGGER) (\S+) (.+) \S+$")
_TRIGGER_ENTRY = re.compile(r"^\d+; \d+ \d+ TRIGGER ")
_CREATE_INDEX = re.compile(
    r"^CREATE (?:UNIQUE )?INDEX (\S+) ON (?:ONLY )?([^\s.]+)\.(\S+) ", re.MULTILINE
)


def _unquote(identifier: str) -> str:
    if identifier.startswith('"') and identifier.endswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier


def _table_key(qualified: str) -> tuple[str, str]:
    schema, _, table = qualified.partition(".")
    return schema, table


# pg_restore lists and scripts are in the database's encoding, whatever it is: read and write
# them back byte for byte.
_DATABASE_TEXT: dict[str, Any] = {"encoding": "utf-8", "errors": "surrogateescape"}


def _write_listing(path: Path, entries: list[str]) -> None:
    """A ``pg_restore --use-list`` file of ``entries`` (lines of ``pg_restore --list``)."""
    path.write_text("\n".join(entries) + "\n", **_DATABASE_TEXT)


def _dependencies(verbose_listing: str) -> dict[int, list[int]]:
    """Each entry's dependencies (dump ids) from ``pg_restore --list --verbose``, which follows
    an entry's line with ``;\tdepends on: 12 34``."""
    dependencies: dict[int, list[int]] = {}
    current = None
    for line in verbose_listing.splitlines():
        if line[:1].isdigit():
            current = int(line.split(";", 1)[0])
        elif current is not None and line.startswith(";\tdepends on:"):
            dependencies[current] = [int(dep) for dep in line.split(":", 1)[1].split()]
    return dependencies


def _read_schema(tool: PgTool, schema_file: Path, args: list[str]) -> str:
    """What ``pg_restore args schema_file`` prints (a listing, a script)."""
    try:
        output: str = subprocess.run(
            [tool.path, *args, str(schema_file)], capture_output=True, check=True, **_DATABASE_TEXT
        ).stdout
    except subprocess.CalledProcessError as exc:
        raise DatabaseError(f"pg_restore cannot read the schema part: {exc.stderr}") from exc
    return output


@dataclass(frozen=True)
class _PostDataEntry:
    """A post-data entry (its ``pg_restore --list`` line) and when it restores: with its
    ``owner`` table's rows, at the end, or ``last`` (after the end, one at a time)."""

    line: str
    owner: tuple[str, str] | None
    last: bool


class _QueryCanceller:
    """Stops a connection's running statement when its :class:`ProcessGroup` is stopped;
    ``stopped`` tells the loop driving the connection not to start another."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.stopped = False

    def terminate(self) -> None:
        self.stopped = True
        self._conn.cancel_safe(timeout=10)


@contextmanager
def _cancelled_with(conn: Any, group: ProcessGroup) -> Iterator[_QueryCanceller]:
    """While inside, stopping ``group`` (another part failed, Ctrl-C) cancels ``conn``'s
    statement: a long COPY does not run on to its end first."""
    canceller = _QueryCanceller(conn)
    group.add(canceller)
    try:
        yield canceller
    finally:
        group.discard(canceller)


class LogicalLoad(PostgresConnection):
    """The logical restore of a backup into this (new, empty) database."""

    def apply_properties(self, database: dict[str, Any]) -> None:
        """Give this database the recorded comment, connection limit, privileges and settings
        (done after the load: a connection limit or a read-only default would hinder it)."""
        name = sql.Identifier(self.database_name)
        statements: list[sql.Composable] = []
        if database.get("connection_limit", -1) != -1:
            statements.append(
                sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(
                    name, sql.Literal(int(database["connection_limit"]))
                )
            )
        if database.get("comment"):
            statements.append(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    name, sql.Literal(database["comment"])
                )
            )
        if database.get("acl") is not None:
            statements.append(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
            for grantee, privilege, grantable in database["acl"]:
                if privilege not in DATABASE_PRIVILEGES:
                    continue
                statements.append(
                    sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                        sql.SQL(privilege),
                        name,
                        sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee),
                        sql.SQL(" WITH GRANT OPTION" if grantable else ""),
                    )
                )
        for role, setting in database.get("settings") or []:
            key, _, value = setting.partition("=")
            rendered: sql.Composable = sql.Literal(value)
            if key in LIST_SETTINGS:
                rendered = sql.SQL(", ").join(map(sql.Literal, split_list_setting(value) or [""]))
            target = (
                sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(role), name)
                if role
                else sql.SQL("ALTER DATABASE {}").format(name)
            )
            statements.append(
                sql.SQL("{} SET {} TO {}").format(target, sql.Identifier(key), rendered)
            )
        if statements:
            with self._connect(MAINTENANCE_DB) as conn, conn.transaction():
                for statement in statements:
                    conn.execute(statement)

    def load(
        self,
        parts: list[PartRecord],
        read_part: ReadPart,
        jobs: int,
        dumped_with: str,
        alongside: Callable[[dict[str, int]], None] | None = None,
        start_over: Callable[[], None] | None = None,
    ) -> LoadReport:
        """:meth:`~warroom.database.DatabaseEngine.load`. With ``start_over`` (which makes this
        database new and empty again), a schema of many tables has its pre-data restored in
        ``jobs`` sessions (:mod:`.predata`); should that fail, it starts over in one session."""
        with self._connect() as conn:
            tool = self._tools(conn, "pg_restore")["pg_restore"]
        major = re.match(r"[0-9]{1,4}(?![0-9])", dumped_with)
        if major is None:  # the manifest says so: hostile or damaged, never a crash
            raise IntegrityError(
                f"the backup records the version of the pg_dump that made it as "
                f"{dumped_with[:40]!r}, which is not a version"
            )
        archive_major = int(major.group())
        if tool.major < archive_major:
            raise ConfigurationError(
                f"the backup was made by pg_dump {dumped_with}, and {tool.path} is "
                f"{tool.version}, which cannot read it; install the PostgreSQL {archive_major} "
                "client tools or set WARROOM_PG_BIN_DIR",
                tool="pg_restore",
            )
        common = ["--exit-on-error", f"--dbname={self._conninfo(loading=True)}"]
        with tempfile.TemporaryDirectory(prefix="warroom-restore-") as tmp:
            schema_file = Path(tmp) / "schema.pgdump"
            with open(schema_file, "wb") as out:
                for chunk in read_part("schema"):
                    out.write(chunk)
            verbose = _read_schema(tool, schema_file, ["--list", "--verbose"])
            dependencies = _dependencies(verbose)
            plan = None
            if start_over is not None and jobs > 1 and worth_planning(verbose):
                entries_listed = _read_schema(tool, schema_file, ["--list", "--section=pre-data"])
                plan = plan_pre_data(entries_listed, dependencies, jobs)
            self._restore_pre_data(tool, common, schema_file, plan, start_over)

            partitions = self._loaded_relations("c.relispartition")
            entries = self._post_data_entries(tool, schema_file, dependencies, partitions)
            early: dict[tuple[str, str], list[str]] = {}
            for entry in entries:
                if entry.owner is not None:
                    early.setdefault(entry.owner, []).append(entry.line)
            done: set[tuple[str, str]] = set()
            loaded: dict[str, int] = {}
            occupied: set[tuple[str, str]] = set()  # tables holding rows before the copy parts
            group = ProcessGroup()

            def load_data(part: PartRecord) -> None:
                keys: list[tuple[str, str]] = []
                if part.copy:
                    tables = [CopyTable.from_dict(table) for table in part.copy]
                    chunks = read_part(part.name)
                    loaded.update(self._copy_in(part.name, tables, chunks, occupied, group))
                    # Rows loaded through a root may land in any partition: no table of
                    # such a tree is complete before the end.
                    keys = [(table.schema, table.name) for table in tables if table.via is None]
                elif part.name == SEQUENCES_PART:
                    self._set_sequences(read_part(part.name))
                else:  # a pg_dump archive: data-rest, or a data part of a format-1 backup
                    self._restore_archive(tool, common, read_part(part.name), group)
                    keys = [_table_key(part.table)] if part.table else []
                # A table with a part of its own (a big one) is loaded: build its indexes and
                # constraints while others load. The small tables that share a part wait for the
                # final post-data run: one more pg_restore per part, each reading the whole
                # schema archive, cost more than their indexes (0.3 s a part with 3,000 tables).
                ready = [key for key in keys if key in early] if len(keys) == 1 else []
                if ready:
                    listing = Path(tmp) / f"{part.name}.list"
                    _write_listing(listing, [line for key in ready for line in early[key]])
                    args = [*common, "--section=post-data", f"--use-list={listing}"]
                    with self._run(tool, [*args, str(schema_file)], group=group) as proc:
                        proc.check()
                    done.update(ready)

            # pg_dump archives first (data-rest; all the data of a format-1 backup): a copy part
            # then truncates those of its tables they wrote to (``occupied``), so their rows are
            # its own and COPY's count is final.
            data_parts = [
                part for part in parts if part.role == "data" and part.name != MATVIEWS_PART
            ]
            archives = [p for p in data_parts if not p.copy]
            run_parallel(archives, load_data, jobs, group)
            if archives:  # the tables whose main fork is not empty: those that may hold rows
                occupied.update(
                    self._loaded_relations("c.relkind = 'r' AND pg_relation_size(c.oid) > 0")
                )
            run_parallel([p for p in data_parts if p.copy], load_data, jobs, group)
            # The rest, in the archive's order (foreign keys after the keys they reference); no
            # pg_restore for an empty list (it reads the whole schema archive, even for nothing).
            remaining = [e.line for e in entries if e.owner not in done and not e.last]
            last = [e.line for e in entries if e.last]
            for name, lines, parallel in (("remaining", remaining, True), ("last", last, False)):
                listing = Path(tmp) / f"{name}.list"
                _write_listing(listing, lines)
                post_data = [
                    *common,
                    "--section=post-data",
                    f"--jobs={max(1, jobs) if parallel else 1}",
                    f"--use-list={listing}",
                    str(schema_file),
                ]
                with self._run(tool, post_data) if lines else nullcontext() as restoring:
                    if alongside is not None and parallel:
                        alongside(loaded)  # every row is in: check them while indexes build
                    if restoring is not None:
                        restoring.check()
        # Last, as pg_restore does: after the indexes they use and the data they read.
        refreshed = 0
        if any(part.name == MATVIEWS_PART for part in parts):
            refreshed = self._refresh_matviews(read_part(MATVIEWS_PART))
        return LoadReport(matviews_refreshed=refreshed)

    def _restore_pre_data(
        self,
        tool: PgTool,
        common: list[str],
        schema_file: Path,
        plan: PreDataPlan | None,
        start_over: Callable[[], None] | None,
    ) -> None:
        """Restore the schema's pre-data: by ``plan`` where there is one (made only when
        ``start_over`` is given), else (or once the plan failed and ``start_over`` ran) in one
        ``pg_restore``, as pg_restore itself does."""
        pre_data = [*common, "--section=pre-data"]
        if plan is not None and start_over is not None:
            try:
                self._restore_planned(tool, pre_data, schema_file, plan)
                return
            except DatabaseError as exc:
                log.warning(
                    "restoring the schema in %d sessions failed (%s); starting over in one",
                    len(plan.parallel),
                    exc,
                )
                start_over()
        with self._run(tool, [*pre_data, str(schema_file)]) as proc:
            proc.check()

    def _restore_planned(
        self, tool: PgTool, pre_data: list[str], schema_file: Path, plan: PreDataPlan
    ) -> None:
        """The plan's first list, its parallel lists at once, then its last list."""
        group = ProcessGroup()

        def restore(name: str, lines: list[str]) -> None:
            if not lines:
                return
            listing = schema_file.with_name(f"pre-data-{name}.list")
            _write_listing(listing, lines)
            args = [*pre_data, f"--use-list={listing}", str(schema_file)]
            with self._run(tool, args, group=group) as proc:
                proc.check()

        restore("first", plan.first)
        run_parallel(
            list(enumerate(plan.parallel)),
            lambda item: restore(f"parallel-{item[0]}", item[1]),
            len(plan.parallel),
            group,
        )
        restore("last", plan.last)

    def _restore_archive(
        self, tool: PgTool, common: list[str], chunks: Iterator[bytes], group: ProcessGroup
    ) -> None:
        """Stream one pg_dump archive into ``pg_restore``'s stdin."""
        with self._run(tool, [*common], stdin=PIPE, group=group) as proc:
            try:
                for chunk in chunks:
                    proc.stdin.write(chunk)
                proc.stdin.close()
            except BrokenPipeError:
                proc.check()  # pg_restore died: its stderr says why
                raise
            proc.check()

    @staticmethod
    def _set_session(conn: Any) -> None:
        """Give a loading session the settings the copy parts were written under, its client
        encoding the database's own (in SQL_ASCII: bytes passed on unchecked)."""
        encoding = conn.execute("SELECT current_setting('server_encoding')").fetchone()[0]
        for statement in session_settings(encoding):
            conn.execute(statement)

    def _copy_in(
        self,
        label: str,
        tables: list[CopyTable],
        chunks: Iterator[bytes],
        occupied: set[tuple[str, str]],
        group: ProcessGroup,
    ) -> dict[str, int]:
        """Load one copy part in one transaction and return each table's count of rows loaded:
        after it, a table holds exactly the part's rows.

        A table alone in its part (a big one) is truncated first, so COPY can write its rows
        already frozen: no later pass (the first read, VACUUM) rewrites every page to set hint
        bits. The small tables that share a part are not (a truncation makes new files for a
        table, its TOAST table and index: 1 s for a part of 200 empty tables, 20 times their
        COPY), but for those already ``occupied`` (rows another part, data-rest, loaded).
        Tables loaded through their root (:attr:`CopyTable.via`) are neither: other parts'
        rows may land in them."""
        frames = TableFrames(label, len(tables))
        pieces = (piece for chunk in chunks for piece in frames.feed(chunk))
        counts: dict[str, int] = {}
        truncated = [
            table
            for table in tables
            if table.via is None and (len(tables) == 1 or (table.schema, table.name) in occupied)
        ]
        direct = [table.identifier for table in truncated]
        with (
            self._connect(loading=True) as conn,
            _cancelled_with(conn, group) as canceller,
            conn.transaction(),
        ):
            # Names in the connection's encoding, before the session takes the database's
            # (SQL_ASCII: the connection's UTF-8, which the server takes as it is).
            truncate = sql.SQL("TRUNCATE ONLY {}").format(sql.SQL(", ").join(direct))
            statements = [
                copy_in_statement(table, freeze=table in truncated).as_bytes(conn)
                for table in tables
            ]
            truncation = truncate.as_bytes(conn)
            self._set_session(conn)
            if direct:
                conn.execute(truncation)
            cursor = conn.cursor()
            pending = next(pieces, None)
            for index, (table, statement) in enumerate(zip(tables, statements, strict=True)):
                if canceller.stopped:
                    raise DatabaseError(f"loading {label} was stopped", part=label)
                with cursor.copy(statement) as copy:
                    while pending is not None and pending[0] == index:
                        copy.write(pending[1])
                        pending = next(pieces, None)
                counts[table.qualified] = cursor.rowcount
            frames.finish()
        return counts

    @staticmethod
    def _load_rows(conn: Any, table: str, columns: sql.SQL, chunks: Iterator[bytes]) -> None:
        """COPY ``chunks`` into a new temporary ``table (columns)``, dropped at commit."""
        name = sql.Identifier(table)
        conn.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(name, columns))
        with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(name)) as copy:
            for chunk in chunks:
                copy.write(chunk)

    def _set_sequences(self, chunks: Iterator[bytes]) -> None:
        """Set every sequence of the sequences part to its stored value, in one statement."""
        with self._connect(loading=True) as conn, conn.transaction():
            self._set_session(conn)
            columns = sql.SQL("schema text, name text, last_value bigint, is_called boolean")
            self._load_rows(conn, "warroom_sequences", columns, chunks)
            conn.execute(
                "SELECT count(pg_catalog.setval(pg_catalog.format('%I.%I', schema, name)::regclass,"
                " last_value, is_called)) FROM warroom_sequences"
            )

    def _refresh_matviews(self, chunks: Iterator[bytes]) -> int:
        """Refresh the materialized views of the matviews part, in its order; return how many."""
        with self._connect(loading=True) as conn, conn.transaction():
            self._set_session(conn)
            columns = sql.SQL("schema text, name text, position bigint")
            self._load_rows(conn, "warroom_matviews", columns, chunks)
            conn.execute(
                "DO $$ DECLARE m record; BEGIN"
                " FOR m IN SELECT schema, name FROM warroom_matviews ORDER BY position LOOP"
                " EXECUTE pg_catalog.format('REFRESH MATERIALIZED VIEW %I.%I', m.schema, m.name);"
                " END LOOP; END $$"
            )
            return int(conn.execute("SELECT count(*) FROM warroom_matviews").fetchone()[0])

    def _loaded_relations(self, condition: str) -> set[tuple[str, str]]:
        """This database's relations ``c`` (``(schema, name)``) that meet SQL ``condition``."""
        with self._connect() as conn:
            return {
                (schema, name)
                for schema, name in conn.execute(
                    "SELECT n.nspname, c.relname FROM pg_class c"
                    f" JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {condition}"
                )
            }

    @staticmethod
    def _post_data_entries(
        tool: PgTool,
        schema_file: Path,
        dependencies: dict[int, list[int]],
        partitions: set[tuple[str, str]],
    ) -> list[_PostDataEntry]:
        """The schema's post-data entries (``pg_restore -l`` lines) in the archive's order.

        An entry's owner is the one table whose rows are all it waits for: an index, a
        constraint other than a foreign key, a trigger, that depends on no other post-data
        entry but that table's. The others restore at the end, in pg_restore's dependency
        order, but for the triggers of partitions (and any trigger whose table the listing
        does not tell): a partition's trigger state must follow its parent's trigger, which
        pg_dump does not always record as a dependency; those restore last, in the archive's
        order, one at a time."""
        listing, script = (
            _read_schema(tool, schema_file, args)
            for args in (["--list", "--section=post-data"], ["--section=post-data", "--file=-"])
        )
        index_table = {
            (_unquote(m.group(2)), _unquote(m.group(1))): _unquote(m.group(3))
            for m in _CREATE_INDEX.finditer(script)
        }
        owners: dict[int, tuple[str, str] | None] = {}
        entries: list[_PostDataEntry] = []
        for line in listing.splitlines():
            if not line.strip() or line.startswith(";"):
                continue
            match = _LIST_ENTRY.match(line)
            key: tuple[str, str] | None = None
            if match:
                kind, schema, middle = match.group(1), match.group(2), match.group(3)
                if kind == "INDEX" and (schema, middle) in index_table:
                    key = (schema, index_table[(schema, middle)])
                elif kind in ("CONSTRAINT", "TRIGGER") and middle.count(" ") == 1:
                    key = (schema, middle.split(" ")[0])
            dump_id = int(line.split(";", 1)[0])
            # The post-data entries before it are in ``owners``: one of another table's waits.
            if any(owners.get(dep, key) != key for dep in dependencies.get(dump_id, ())):
                key = None
            last = bool(_TRIGGER_ENTRY.match(line)) and (key is None or key in partitions)
            owners[dump_id] = key = None if last else key
            entries.append(_PostDataEntry(line, key, last))
        return entries
