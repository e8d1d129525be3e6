"""The PostgreSQL engine: logical backups of one consistent snapshot, and parallel restores.

A backup exports a snapshot from a read-only repeatable-read transaction, which also holds
ACCESS SHARE locks on every table until the backup ends (as pg_dump does). Its parts:

- ``schema``: ``pg_dump --schema-only`` (custom format, uncompressed: storage compresses);
- ``copy-NNNNN``: table rows in COPY text format (:mod:`warroom.database.pgcopy`), written by
  ``psql`` in the snapshot: a part per big table, small tables sharing parts. Each table's
  rows are counted in the stream as it is stored;
- ``data-rest``: ``pg_dump --data-only`` of the rest (sequence values, large objects, the data
  of extensions' configuration tables).

The parts are written ``jobs`` at a time. A restore runs the schema's pre-data section, loads
the data parts ``jobs`` at a time (each copy part in one transaction, its tables truncated
and their rows written frozen), builds each table's indexes and constraints as soon as its
rows are in, then the rest of post-data (foreign keys, ...) with ``pg_restore --jobs``.
Backups of manifest format 1 (table data in pg_dump archives) restore through ``pg_restore``.
"""

from __future__ import annotations

import base64
import re
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path
from subprocess import PIPE
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from warroom.critical import fault_point, signals_deferred
from warroom.database import DumpInfo, LoadReport, PartRecord, ReadPart, Source, WritePart
from warroom.database.pgcopy import (
    CopyTable,
    TableFrames,
    copy_in_statement,
    copy_out_script,
    plan_parts,
    session_settings,
)
from warroom.database.pgtools import PgProcess, PgTool, ProcessGroup, find_tools, run_parallel
from warroom.errors import (
    ConfigurationError,
    DatabaseError,
    DatabaseUnreachableError,
    InputError,
    IntegrityError,
    WarroomError,
)
from warroom.redact import redact_text, redact_url

__all__ = ["PostgresEngine"]

MAX_DB_NAME = 63
MAINTENANCE_DB = "postgres"
# The databases warroom creates for its own use while it works: restores load a staging database
# and retire the one they replace; restore tests load a scratch one. Each is claimed, from
# before it exists until it is gone, by a session-level advisory lock on the maintenance
# database, so a process killed meanwhile releases its claim and leaves a sweepable database.
WORK_DATABASE = re.compile(r"^warroom_(?:restore|scratch|retired)_[0-9a-f]{12}$")
WORK_CLAIM_KEY = 22354  # the first key of every claim; the second is hashtext(name)
_CLAIM = f"SELECT pg_advisory_lock({WORK_CLAIM_KEY}, hashtext(%s))"
_TRY_CLAIM = f"SELECT pg_try_advisory_lock({WORK_CLAIM_KEY}, hashtext(%s))"
_UNCLAIM = f"SELECT pg_advisory_unlock({WORK_CLAIM_KEY}, hashtext(%s))"
_RENAME = sql.SQL("ALTER DATABASE {} RENAME TO {}")
_ARCHIVER_QUERY = """
SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal,
       last_failed_time,
       extract(epoch FROM now() - last_archived_time)::float8 AS last_archived_seconds,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_wal,
       (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') AS segment_size
FROM pg_stat_archiver
"""
_READY_QUERY = """
SELECT count(*), extract(epoch FROM now() - min(modification))::float8
FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'
"""
_TERMINATE = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = %s AND pid <> pg_backend_pid()"
)
# A swap is tried this many times when sessions do not end (or its lock does not come) in
# SWAP_WAIT; its reaper terminates the sessions on the database every REAP_INTERVAL seconds.
SWAP_ATTEMPTS = 3
SWAP_WAIT = "5s"
REAP_INTERVAL = 0.1
_BUSY = (psycopg.errors.ObjectInUse, psycopg.errors.LockNotAvailable)
# Every table a backup locks: the tables whose rows it copies ('r'), with the columns COPY
# reads and writes (not dropped, not generated) in order, and partitioned tables ('p'). From
# the catalog alone: sizes need locks (_SIZES_QUERY). A partition of a tree that hashes a key
# whose hash is not proven independent of OIDs (only built-in base types other than reg*, with
# built-in operator classes, are: an enum's hash is its value's OID) has its tree's root: its
# rows are loaded through that root, which routes them again.
_TABLES_QUERY = """
WITH unsafe AS (
    SELECT pt.partrelid FROM pg_partitioned_table pt
    WHERE pt.partstrat = 'h' AND EXISTS (
        SELECT 1 FROM unnest(pt.partattrs::int2[], pt.partclass::oid[]) AS k(attnum, opclass)
        JOIN pg_opclass o ON o.oid = k.opclass
        LEFT JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = k.attnum
        LEFT JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_type b ON b.oid = CASE t.typtype WHEN 'd' THEN t.typbasetype ELSE t.oid END
        WHERE k.attnum = 0 OR o.opcnamespace <> 'pg_catalog'::regnamespace
           OR b.typtype <> 'b' OR b.typnamespace <> 'pg_catalog'::regnamespace
           OR b.typcategory = 'A' OR b.typname LIKE 'reg%'))
SELECT n.nspname, c.relname, c.oid, c.relkind = 'p',
       ARRAY(SELECT a.attname FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
               AND a.attgenerated = '' ORDER BY a.attnum),
       CASE WHEN c.relispartition AND EXISTS (
           SELECT 1 FROM pg_partition_ancestors(c.oid) p JOIN unsafe u ON u.partrelid = p.relid)
       THEN (SELECT ARRAY[rn.nspname, r.relname] FROM pg_class r
             JOIN pg_namespace rn ON rn.oid = r.relnamespace
             WHERE r.oid = pg_partition_root(c.oid)) END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""
# The sequences whose values a backup stores itself (pg_dump's SEQUENCE SET), and the
# relations of extensions' configuration, whose data pg_dump dumps (the rows that the
# extension marked as the user's).
_SEQUENCES = """
SELECT n.nspname, c.relname, pg_sequence_last_value(c.oid) AS last_value
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S' AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
"""
_CALLED_SEQUENCES_QUERY = f"""
SELECT nspname, relname, last_value, true FROM ({_SEQUENCES}) s WHERE last_value IS NOT NULL
"""
_UNCALLED_SEQUENCES_QUERY = (
    f"SELECT nspname, relname FROM ({_SEQUENCES}) s WHERE last_value IS NULL"
)
_EXTENSION_CONFIG_QUERY = """
SELECT n.nspname, c.relname FROM pg_extension e CROSS JOIN unnest(e.extconfig) AS x(oid)
JOIN pg_class c ON c.oid = x.oid JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY 1, 2
"""
SEQUENCES_BATCH = 100  # a UNION ALL of many more plans slowly
# The populated materialized views a restore refreshes, as pg_dump's REFRESH entries do: each
# with the materialized views it reads (through views too), so none reads an unpopulated one.
_MATVIEWS_QUERY = """
WITH RECURSIVE reads(matview, relation) AS (
    SELECT r.ev_class, d.refobjid FROM pg_rewrite r
    JOIN pg_class m ON m.oid = r.ev_class AND m.relkind = 'm'
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                    AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
  UNION
    SELECT reads.matview, d.refobjid FROM reads
    JOIN pg_class v ON v.oid = reads.relation AND v.relkind IN ('v', 'm')
    JOIN pg_rewrite r ON r.ev_class = v.oid
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                    AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
)
SELECT c.oid, n.nspname, c.relname, c.relispopulated,
       ARRAY(SELECT x.oid FROM reads JOIN pg_class x ON x.oid = reads.relation
             WHERE reads.matview = c.oid AND x.relkind = 'm')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'm'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 2, 3
"""
SEQUENCES_PART = "sequences"
MATVIEWS_PART = "matviews"

# The snapshot's transaction holds every table before the parts are dumped, so a pg_dump or
# psql of the backup waits for a lock only when another session's request (an ALTER TABLE)
# is queued behind the backup's: waiting would stall that session, and every query behind it,
# until the backup gave up. They give up at once (psql) or after this many seconds (pg_dump).
CHILD_LOCK_WAIT = 5
_LOCK_REFUSED = re.compile(r"could not obtain lock on relation|canceling statement due to lock")
# A table's size for planning parts: its rows' main fork and TOAST table's (the other forks
# cost a stat() each, many times the whole query on thousands of tables).
_SIZES_QUERY = """
SELECT pg_relation_size(c.oid) + coalesce(pg_relation_size(nullif(c.reltoastrelid, 0)), 0)
FROM unnest(%s::oid[]) WITH ORDINALITY AS t(oid, position) JOIN pg_class c ON c.oid = t.oid
ORDER BY t.position
"""

# to_jsonb(d) reads columns that only some server versions have (PostgreSQL 15's ICU locale).
_DATABASE_QUERY = """
SELECT pg_encoding_to_char(d.encoding) AS encoding, d.datcollate, d.datctype,
       to_jsonb(d) ->> 'datlocprovider' AS locale_provider,
       to_jsonb(d) ->> 'daticulocale' AS icu_locale,
       pg_get_userbyid(d.datdba) AS owner, d.datconnlimit,
       shobj_description(d.oid, 'pg_database') AS comment,
       d.datacl IS NOT NULL AS has_acl,
       current_setting('server_version') AS server_version
FROM pg_database d WHERE d.datname = current_database()
"""
_ACL_QUERY = """
SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
       a.privilege_type, a.is_grantable
FROM pg_database d, aclexplode(d.datacl) a
WHERE d.datname = current_database() ORDER BY 1, 2
"""
_SETTINGS_QUERY = """
SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, c.setting
FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase,
     unnest(s.setconfig) WITH ORDINALITY AS c(setting, position)
WHERE d.datname = current_database() ORDER BY 1 NULLS FIRST, c.position
"""
_SUBSCRIBED_QUERY = """
SELECT d.datallowconn, EXISTS (SELECT 1 FROM pg_subscription s WHERE s.subdbid = d.oid)
FROM pg_database d WHERE d.datname = %s
"""
SESSION_OPTIONS = "-c idle_in_transaction_session_timeout=0 -c statement_timeout=0"
# A restore's load commits many small transactions (a statement of pre-data each): none waits
# for its WAL to reach the disk. A crash may lose the last of them, in a staging or scratch
# database that no one uses yet; the swap that puts it in place commits synchronously, which
# flushes all the WAL before it.
LOAD_OPTIONS = "-c synchronous_commit=off"
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


def _pattern(schema: str, table: str) -> str:
    """A pg_dump ``--table`` pattern matching exactly this table (quotes make it literal)."""
    return '"{}"."{}"'.format(schema.replace('"', '""'), table.replace('"', '""'))


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


def _copy_out(conn: Any, query: sql.Composable) -> Iterator[bytes]:
    """The rows of ``query`` as COPY text, in chunks."""
    with conn.cursor().copy(sql.SQL("COPY ({}) TO STDOUT").format(query)) as copy:
        yield from (bytes(chunk) for chunk in copy)


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


class PostgresEngine:
    """One PostgreSQL database. The password never reaches argv, logs or messages."""

    scheme = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        pg_bin_dir: Path | None,
        connect_timeout: int,
        lock_wait_timeout: int = 600,
    ) -> None:
        self.display = redact_url(url)
        usage = "expected postgresql://user:password@host:5432/dbname"
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            # libpq's message quotes the offending text, which may be the password.
            raise ConfigurationError(
                f"invalid PostgreSQL URL {self.display!r}: it cannot be parsed; {usage}"
            ) from exc
        if not params.get("dbname"):
            raise ConfigurationError(f"the URL {self.display!r} names no database; add it: {usage}")
        for key in ("port", "connect_timeout"):
            if not all(part.strip().isdigit() for part in str(params.get(key, "0")).split(",")):
                raise ConfigurationError(f"the URL {self.display!r} has a non-numeric {key}")
        if "sslpassword" in params:
            raise ConfigurationError(
                "sslpassword in the URL is not supported: pg_dump would need it on its command "
                "line; use a client key without a passphrase"
            )
        password = params.pop("password", None)
        self._params: dict[str, Any] = params
        self._password: str | None = str(password) if password is not None else None
        self._pg_bin_dir = pg_bin_dir
        self._connect_timeout = connect_timeout
        self._lock_wait_timeout = lock_wait_timeout
        self._claim: ExitStack | None = None

    # -- identity ---------------------------------------------------------------------------

    @property
    def database_name(self) -> str:
        return str(self._params["dbname"])

    @property
    def identity(self) -> str:
        host = self._params.get("host") or "localhost"
        return f"postgresql://{host}:{self._params.get('port') or 5432}/{self.database_name}"

    def source(self) -> Source:
        address = self.identity
        try:
            with self._connect() as conn:
                (system_id,) = conn.execute(
                    "SELECT system_identifier FROM pg_control_system()"
                ).fetchone()
        except DatabaseError:
            return Source(id=address, address=address, label=self.display)
        return Source(
            id=f"postgresql:{system_id}/{self.database_name}", address=address, label=self.display
        )

    def sibling(self, database_name: str) -> PostgresEngine:
        if not 0 < len(database_name.encode()) <= MAX_DB_NAME:
            raise InputError(
                f"database name {database_name!r} must be 1 to {MAX_DB_NAME} bytes long"
            )
        clone = object.__new__(PostgresEngine)
        clone.__dict__.update(self.__dict__)
        clone._params = {**self._params, "dbname": database_name}
        clone.display = self.display.rsplit("/", 1)[0] + "/" + database_name
        clone._claim = None
        return clone

    # -- warroom's own work databases -------------------------------------------------------

    def _claim_name(self) -> None:
        """Claim this work database's name (see WORK_DATABASE) until :meth:`_release` or the
        process ends; other names need no claim."""
        if self._claim is not None or not WORK_DATABASE.match(self.database_name):
            return
        claim = ExitStack()
        conn = claim.enter_context(self._connect(MAINTENANCE_DB))
        try:
            conn.execute(_CLAIM, (self.database_name,))
        except BaseException as exc:
            claim.__exit__(type(exc), exc, exc.__traceback__)  # raises it as a DatabaseError
            raise
        self._claim = claim

    def _release(self) -> None:
        if self._claim is not None:
            self._claim.close()
            self._claim = None

    def sweep_abandoned(self) -> list[str]:
        """Drop the work databases on this server whose process is gone (killed during a
        restore or a restore test); return their names."""
        dropped = []
        with self._connect(MAINTENANCE_DB) as conn:
            names = [
                name
                for (name,) in conn.execute("SELECT datname FROM pg_database ORDER BY 1")
                if WORK_DATABASE.match(name)
            ]
            for name in names:
                if conn.execute(_TRY_CLAIM, (name,)).fetchone()[0]:
                    try:
                        self.sibling(name).drop()
                        dropped.append(name)
                    finally:
                        conn.execute(_UNCLAIM, (name,))
        return dropped

    # -- connections and tools --------------------------------------------------------------

    def _conninfo(self, dbname: str | None = None, loading: bool = False) -> str:
        """Connection parameters without the password. Server-side timeouts that the database
        or role may set (idle in transaction, statement) would kill a long backup: off.
        ``loading``: a session of a restore's load (LOAD_OPTIONS)."""
        params = {**self._params, "dbname": dbname or self.database_name}
        params.setdefault("connect_timeout", self._connect_timeout)
        params.setdefault("application_name", "warroom")
        params["options"] = " ".join(
            filter(
                None,
                [
                    str(params.get("options") or ""),
                    SESSION_OPTIONS,
                    f"-c lock_timeout={self._lock_wait_timeout}s",
                    LOAD_OPTIONS if loading else "",
                ],
            )
        )
        return make_conninfo(**params)

    def _tool_env(self) -> dict[str, str]:
        env = {"PGCONNECT_TIMEOUT": str(self._connect_timeout), "PGAPPNAME": "warroom"}
        if self._password:
            env["PGPASSWORD"] = self._password
        return env

    @contextmanager
    def _connect(
        self, dbname: str | None = None, autocommit: bool = True, loading: bool = False
    ) -> Iterator[Any]:
        where = self.display if dbname is None else self.sibling(dbname).display
        try:
            conn = psycopg.connect(
                self._conninfo(dbname, loading), autocommit=autocommit, password=self._password
            )
        except psycopg.ProgrammingError as exc:
            raise ConfigurationError(
                f"invalid connection parameters in {self.display!r}: "
                f"{redact_text(str(exc).strip(), self._password)}"
            ) from exc
        except psycopg.OperationalError as exc:
            reason = redact_text(str(exc).strip(), self._password)
            raise DatabaseUnreachableError(
                f"cannot connect to {where}: {reason}", database=where
            ) from exc
        try:
            with conn:
                if conn.info.parameter_status("client_encoding") == "SQL_ASCII":
                    # psycopg returns SQL_ASCII text as bytes: read names as UTF-8 (the server
                    # checks them), and statements go out in it.
                    conn.execute("SET client_encoding = 'UTF8'")
                    conn.commit()
                yield conn
        except psycopg.Error as exc:
            reason = redact_text(str(exc).strip(), self._password)
            raise DatabaseError(f"{where}: {reason}", database=where) from exc

    def _tools(self, conn: Any, *names: str) -> dict[str, PgTool]:
        major = int(conn.info.server_version) // 10000
        return find_tools(major, self._pg_bin_dir, *names)

    def _run(self, tool: PgTool, args: list[str], **kwargs: Any) -> PgProcess:
        """Start ``tool``; the password travels in PGPASSWORD, never on the command line."""
        return PgProcess(tool, args, env=self._tool_env(), secrets=(self._password,), **kwargs)

    # -- backup -----------------------------------------------------------------------------

    def dump(self, write_part: WritePart, jobs: int) -> DumpInfo:
        with self._connect(autocommit=False) as conn:
            tools = self._tools(conn, "pg_dump", "psql")
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
            archive = [
                "--format=custom",
                "--compress=0",
                f"--snapshot={snapshot}",
                f"--lock-wait-timeout={CHILD_LOCK_WAIT}s",
                f"--dbname={self._conninfo()}",
            ]
            database = self._database_properties(conn)
            counts: dict[str, int] = {}
            group = ProcessGroup()

            def tasks() -> Iterator[tuple[str, tuple[CopyTable, ...] | list[str]]]:
                """The parts, the schema's first: its pg_dump starts (it reads the catalog as
                long as the rest of the backup takes) while the tables are listed and locked."""
                yield ("schema", ["--schema-only"])
                relations = self._relations(conn)
                self._lock_tables(conn, [table for table, *_ in relations])
                copied = [(table, oid) for table, oid, partitioned in relations if not partitioned]
                sizes = [size for (size,) in conn.execute(_SIZES_QUERY, [[o for _, o in copied]])]
                data_rest = self._data_rest_args(conn)
                if data_rest:
                    yield ("data-rest", data_rest)
                tables = [table for table, _ in copied]
                for i, part in enumerate(plan_parts(list(zip(tables, sizes, strict=True)))):
                    yield (f"copy-{i:05d}", part)

            # The psql script names tables and columns in the database's encoding, as psql
            # will send them (the connection decoded them from it).
            codec = conn.info.encoding

            def dump_part(task: tuple[str, tuple[CopyTable, ...] | list[str]]) -> PartRecord:
                name, what = task
                if isinstance(what, list):  # a pg_dump archive
                    role = "schema" if name == "schema" else "data"
                    args = [*archive, *what]
                    with self._run(tools["pg_dump"], args, stdout=PIPE, group=group) as proc:
                        return write_part(name, role, None, proc.stream_stdout())
                script = copy_out_script(snapshot, database["encoding"], what).encode(codec)
                record, rows = self._dump_copy(tools["psql"], name, what, script, write_part, group)
                counts.update(rows)
                return record

            def run(task: tuple[str, tuple[CopyTable, ...] | list[str]]) -> PartRecord:
                try:
                    return dump_part(task)
                except DatabaseError as exc:
                    if not _LOCK_REFUSED.search(exc.message):
                        raise
                    raise DatabaseError(
                        f"the backup of {self.display} gave way: another session is waiting to "
                        "lock a table the backup holds (ALTER, DROP or TRUNCATE), and waiting "
                        "for it would have stalled that session and every query behind it; "
                        f"retry once it is done ({exc.message})",
                        database=self.display,
                    ) from exc

            def own_parts() -> None:
                """The parts the snapshot's own connection reads, while the children run."""
                write_part(SEQUENCES_PART, "data", None, self._sequence_values(conn))
                write_part(MATVIEWS_PART, "data", None, self._populated_matviews(conn))

            run_parallel(tasks(), run, jobs, group, alongside=own_parts)
            conn.rollback()
        return DumpInfo(
            server_version=database.pop("server_version"),
            tool="pg_dump",
            tool_version=tools["pg_dump"].version,
            tables=dict(sorted(counts.items())),
            database=database,
        )

    def _dump_copy(
        self,
        psql: PgTool,
        name: str,
        tables: tuple[CopyTable, ...],
        script: bytes,
        write_part: WritePart,
        group: ProcessGroup,
    ) -> tuple[PartRecord, dict[str, int]]:
        """Store copy part ``name`` from ``psql`` running ``script``; return its record and
        each table's row count, counted in the stream."""
        frames = TableFrames(name, len(tables), count_rows=True)
        with tempfile.TemporaryDirectory(prefix="warroom-dump-") as tmp:
            script_file = Path(tmp) / "copy.sql"
            script_file.write_bytes(script)
            args = ["-X", "-q", f"--dbname={self._conninfo()}", f"--file={script_file}"]
            with self._run(psql, args, stdout=PIPE, group=group) as proc:
                record = write_part(
                    name,
                    "data",
                    None,
                    frames.counted(proc.stream_stdout()),
                    copy=tuple(table.to_dict() for table in tables),
                )
        rows = zip(tables, frames.rows, strict=True)
        return record, {table.qualified: count for table, count in rows}

    @staticmethod
    def _data_rest_args(conn: Any) -> list[str] | None:
        """pg_dump's arguments for data-rest: the large objects and the rows of extensions'
        configuration tables, which the copy parts leave out (sequence values are a part of
        their own); a few, however many tables there are. None when there are neither."""
        configuration = conn.execute(_EXTENSION_CONFIG_QUERY).fetchall()
        # UTF8: the patterns arrive from argv in UTF-8, whatever the database's encoding.
        args = ["--data-only", "--encoding=UTF8"]
        if configuration:
            return [*args, "--blobs", *(f"--table={_pattern(*name)}" for name in configuration)]
        if conn.execute("SELECT EXISTS (SELECT FROM pg_largeobject_metadata)").fetchone()[0]:
            # --table, which would have matched nothing, would have failed pg_dump
            return [*args, "--exclude-table-data=*.*"]
        return None

    @staticmethod
    def _sequence_values(conn: Any) -> Iterator[bytes]:
        """The sequences part: every sequence's ``schema, name, last_value, is_called`` as COPY
        text (what pg_dump's SEQUENCE SET entries restore). The sequences that were called
        come from one query; the others (whose last_value pg_sequence_last_value does not
        tell) are read in batches."""
        yield from _copy_out(conn, sql.SQL(_CALLED_SEQUENCES_QUERY))
        names = conn.execute(_UNCALLED_SEQUENCES_QUERY).fetchall()
        for start in range(0, len(names), SEQUENCES_BATCH):
            selects = [
                sql.SQL("SELECT {}, {}, last_value, is_called FROM {}").format(
                    sql.Literal(schema), sql.Literal(name), sql.Identifier(schema, name)
                )
                for schema, name in names[start : start + SEQUENCES_BATCH]
            ]
            yield from _copy_out(conn, sql.SQL(" UNION ALL ").join(selects))

    @staticmethod
    def _populated_matviews(conn: Any) -> Iterator[bytes]:
        """The matviews part: as COPY text (``schema, name``), in an order a restore can
        refresh them in, the materialized views that were populated and read none that was
        not (pg_dump does not refresh those either)."""
        found = {row[0]: row[1:] for row in conn.execute(_MATVIEWS_QUERY)}
        order = TopologicalSorter({oid: row[3] for oid, row in found.items()}).static_order()
        names = [
            found[oid][:2]
            for oid in order
            if oid in found  # not an extension's
            and found[oid][2]
            and all(found[other][2] for other in found[oid][3] if other in found)
        ]
        if names:
            yield from _copy_out(
                conn,
                sql.SQL("SELECT * FROM unnest({}::text[], {}::text[]) WITH ORDINALITY").format(
                    sql.Literal([schema for schema, _ in names]),
                    sql.Literal([name for _, name in names]),
                ),
            )

    def _lock_tables(self, conn: Any, tables: list[CopyTable]) -> None:
        """Hold ACCESS SHARE locks on every table for the whole backup, as pg_dump does: a
        concurrent ALTER or TRUNCATE rewrites a table outside the snapshot's view."""
        if not tables:
            return
        targets = sql.SQL(", ").join(table.identifier for table in tables)
        try:
            conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(targets))
        except psycopg.errors.LockNotAvailable as exc:
            raise DatabaseError(
                f"cannot back up {self.display}: another session held a conflicting lock on "
                f"a table (ALTER, DROP or TRUNCATE) for {self._lock_wait_timeout}s; retry, or "
                "raise WARROOM_LOCK_WAIT_TIMEOUT",
                database=self.display,
            ) from exc

    def base_backup(self, write_part: WritePart) -> DumpInfo:
        """A physical base backup of the whole cluster (``pg_basebackup``, tar format, with
        the WAL it needs), streamed as the part ``base.tar``. Needs a replication connection
        (the REPLICATION attribute, or superuser, and a pg_hba.conf replication entry)."""
        with self._connect() as conn:
            tool = self._tools(conn, "pg_basebackup")["pg_basebackup"]
            server_version = conn.execute("SHOW server_version").fetchone()[0]
        args = [
            f"--dbname={self._conninfo()}",
            "--pgdata=-",
            "--format=tar",
            "--wal-method=fetch",
            "--checkpoint=fast",
            "--verbose",
            "--no-manifest",
        ]
        with self._run(tool, args, stdout=PIPE) as proc:
            write_part("base.tar", "base", None, proc.stream_stdout())
            log = proc.stderr_text()
        start = re.search(
            r"write-ahead log start point: ([0-9A-F]+/[0-9A-F]+) on timeline (\d+)", log
        )
        end = re.search(r"write-ahead log end point: ([0-9A-F]+/[0-9A-F]+)", log)
        if not start or not end:
            raise DatabaseError(f"pg_basebackup did not report its WAL positions: {log[-300:]}")
        with self._connect() as conn:
            wal_file = conn.execute(
                "SELECT pg_walfile_name(%s::pg_lsn)", (start.group(1),)
            ).fetchone()[0]
        return DumpInfo(
            server_version=server_version,
            tool="pg_basebackup",
            tool_version=tool.version,
            tables={},
            database={
                "start_lsn": start.group(1),
                "end_lsn": end.group(1),
                "timeline": int(start.group(2)),
                "start_wal": wal_file,
            },
        )

    def create_restore_point(self, name: str) -> dict[str, Any]:
        """``pg_create_restore_point``, then a WAL switch so the point reaches the archive."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT pg_create_restore_point(%s)::text, now(), "
                "(SELECT timeline_id FROM pg_control_checkpoint())",
                (name,),
            ).fetchone()
            conn.execute("SELECT pg_switch_wal()")
        return {"lsn": row[0], "time": row[1].isoformat(), "timeline": row[2]}

    def archiving_status(self) -> dict[str, Any] | None:
        """What the server knows about its archiving, when archiving is on (None when off):
        pg_stat_archiver's figures; ``last_archived_seconds``, how long ago it archived;
        ``current_wal``, the segment being written; ``segment_size``;
        and, from the files in pg_wal/archive_status (superuser or pg_monitor, else None),
        ``ready_count``, the segments waiting to be archived, and ``oldest_ready_seconds``, how
        long the oldest has waited (by the server's clock). Those files cannot lie: an
        archive_command that cannot even run (exit 126) leaves failed_count at 0."""
        with self._connect() as conn:
            if conn.execute("SHOW archive_mode").fetchone()[0] == "off":
                return None
            stats: dict[str, Any] = (
                conn.cursor(row_factory=dict_row).execute(_ARCHIVER_QUERY).fetchone()
            )
            try:
                ready = conn.execute(_READY_QUERY).fetchone()
            except psycopg.errors.InsufficientPrivilege:
                ready = (None, None)
        stats["ready_count"], stats["oldest_ready_seconds"] = ready
        return stats

    def run_server_program(self, command: str) -> tuple[int, str]:
        """Run shell ``command`` where the server runs, as the server's OS user, the way it runs
        archive_command (``/bin/sh -c``, in the data directory, with the server's environment),
        through ``COPY ... FROM PROGRAM``; return its exit code and its output (stdout and
        stderr). Needs a superuser or a member of pg_execute_server_program."""
        encoded = base64.b64encode(command.encode()).decode()
        wrapper = (
            f"out=$(sh -c \"$(printf %s '{encoded}' | base64 -d)\" 2>&1); echo $?; "
            'printf %s "$out" | base64'
        )
        with self._connect() as conn, conn.transaction():
            conn.execute("CREATE TEMP TABLE warroom_program (n serial, line text) ON COMMIT DROP")
            try:
                conn.execute(
                    sql.SQL("COPY warroom_program (line) FROM PROGRAM {}").format(
                        sql.Literal(wrapper)
                    )
                )
            except psycopg.errors.InsufficientPrivilege as exc:
                raise ConfigurationError(
                    f"{self._params.get('user') or 'this role'} may not run programs on the "
                    f"server of {self.display} (COPY FROM PROGRAM); connect as a superuser, or "
                    "GRANT pg_execute_server_program to it",
                    database=self.display,
                ) from exc
            lines = [
                line for (line,) in conn.execute("SELECT line FROM warroom_program ORDER BY n")
            ]
        output = base64.b64decode("".join(lines[1:])).decode("utf-8", "replace")
        return int(lines[0]), output

    def setting(self, name: str) -> str:
        """The server's current value of a setting (``SHOW``)."""
        with self._connect() as conn:
            return str(conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0])

    def apply_settings(self, settings: dict[str, str]) -> None:
        """ALTER SYSTEM SET each setting, then reload the configuration."""
        with self._connect() as conn:
            for key, value in settings.items():
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(
                        sql.Identifier(key), sql.Literal(value)
                    )
                )
            conn.execute("SELECT pg_reload_conf()")

    @staticmethod
    def _database_properties(conn: Any) -> dict[str, Any]:
        """What ``pg_dump`` without ``--create`` leaves out: the database's own properties."""
        row = conn.cursor(row_factory=dict_row).execute(_DATABASE_QUERY).fetchone()
        acl = None
        if row["has_acl"]:
            acl = [list(r) for r in conn.execute(_ACL_QUERY).fetchall()]
        settings = [list(r) for r in conn.execute(_SETTINGS_QUERY).fetchall()]
        return {
            "encoding": row["encoding"],
            "collate": row["datcollate"],
            "ctype": row["datctype"],
            "locale_provider": row["locale_provider"],
            "icu_locale": row["icu_locale"],
            "owner": row["owner"],
            "connection_limit": row["datconnlimit"],
            "comment": row["comment"],
            "acl": acl,
            "settings": settings,
            "server_version": row["server_version"],
        }

    @staticmethod
    def _relations(conn: Any) -> list[tuple[CopyTable, int, bool]]:
        """Every table a backup locks (_TABLES_QUERY): (table, oid, partitioned)."""
        return [
            (CopyTable(schema, name, tuple(columns), tuple(via) if via else None), oid, partitioned)
            for schema, name, oid, partitioned, columns, via in conn.execute(_TABLES_QUERY)
        ]

    def count_rows(self, exclude: Collection[str] = ()) -> dict[str, int]:
        counts = {}
        with self._connect() as conn:
            for table, _, partitioned in self._relations(conn):
                if not partitioned and table.qualified not in exclude:
                    query = sql.SQL("SELECT count(*) FROM {}").format(table.identifier)
                    counts[table.qualified] = conn.execute(query).fetchone()[0]
        return counts

    # -- restore ----------------------------------------------------------------------------

    def ping(self) -> None:
        with self._connect() as conn:
            conn.execute("SELECT 1")

    def client_tool(self, name: str) -> PgTool:
        """The client program ``name``, no older than this database's server."""
        with self._connect() as conn:
            return self._tools(conn, name)[name]

    def exists(self) -> bool:
        with self._connect(MAINTENANCE_DB) as conn:
            return bool(
                conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (self.database_name,)
                ).fetchone()
            )

    @contextmanager
    def scratch(self) -> Iterator[PostgresEngine]:
        scratch = self.sibling(f"warroom_scratch_{uuid.uuid4().hex[:12]}")
        try:
            yield scratch
        finally:
            scratch.drop()

    def create_empty(self, database: dict[str, Any]) -> None:
        """CREATE DATABASE with the recorded encoding, locale and owner (from template0)."""
        options: list[sql.Composable] = [sql.SQL("TEMPLATE template0")]
        keywords = [("encoding", "ENCODING"), ("collate", "LC_COLLATE"), ("ctype", "LC_CTYPE")]
        if database.get("locale_provider") == "i" and database.get("icu_locale"):
            keywords += [("icu_locale", "ICU_LOCALE")]
            options.append(sql.SQL("LOCALE_PROVIDER icu"))
        for key, keyword in keywords:
            if database.get(key):
                options.append(sql.SQL(keyword + " {}").format(sql.Literal(database[key])))
        if database.get("owner"):
            options.append(sql.SQL("OWNER {}").format(sql.Identifier(database["owner"])))
        statement = sql.SQL("CREATE DATABASE {} ").format(
            sql.Identifier(self.database_name)
        ) + sql.SQL(" ").join(options)
        self._claim_name()
        with self._connect(MAINTENANCE_DB) as conn:
            conn.execute(statement)

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
    ) -> LoadReport:
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
            with self._run(tool, [*common, "--section=pre-data", str(schema_file)]) as proc:
                proc.check()

            entries = self._post_data_entries(tool, schema_file, self._partitions())
            early: dict[tuple[str, str], list[str]] = {}
            for entry in entries:
                if entry.owner is not None:
                    early.setdefault(entry.owner, []).append(entry.line)
            done: set[tuple[str, str]] = set()
            loaded: dict[str, int] = {}
            group = ProcessGroup()

            def load_data(part: PartRecord) -> None:
                keys: list[tuple[str, str]] = []
                if part.copy:
                    tables = [CopyTable.from_dict(table) for table in part.copy]
                    loaded.update(self._copy_in(part.name, tables, read_part(part.name), group))
                    # Rows loaded through a root may land in any partition: no table of
                    # such a tree is complete before the end.
                    keys = [(table.schema, table.name) for table in tables if table.via is None]
                elif part.name == SEQUENCES_PART:
                    self._set_sequences(read_part(part.name))
                else:  # a pg_dump archive: data-rest, or a data part of a format-1 backup
                    self._restore_archive(tool, common, read_part(part.name), group)
                    keys = [_table_key(part.table)] if part.table else []
                # These tables are loaded: build their indexes and constraints while others load.
                ready = [key for key in keys if key in early]
                if ready:
                    listing = Path(tmp) / f"{part.name}.list"
                    _write_listing(listing, [line for key in ready for line in early[key]])
                    args = [*common, "--section=post-data", f"--use-list={listing}"]
                    with self._run(tool, [*args, str(schema_file)], group=group) as proc:
                        proc.check()
                    done.update(ready)

            # pg_dump archives first (data-rest; all the data of a format-1 backup): a copy part
            # then truncates its tables, so their rows are its own and COPY's count is final.
            data_parts = [
                part for part in parts if part.role == "data" and part.name != MATVIEWS_PART
            ]
            for batch in ([p for p in data_parts if not p.copy], [p for p in data_parts if p.copy]):
                run_parallel(batch, load_data, jobs, group)
            # The rest, in the archive's order (foreign keys after the keys they reference).
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
                with self._run(tool, post_data) as proc:
                    if alongside is not None and parallel:
                        alongside(loaded)  # every row is in: check them while indexes build
                    proc.check()
        # Last, as pg_restore does: after the indexes they use and the data they read.
        refreshed = 0
        if any(part.name == MATVIEWS_PART for part in parts):
            refreshed = self._refresh_matviews(read_part(MATVIEWS_PART))
        return LoadReport(matviews_refreshed=refreshed)

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
        self, label: str, tables: list[CopyTable], chunks: Iterator[bytes], group: ProcessGroup
    ) -> dict[str, int]:
        """Load one copy part in one transaction and return each table's count of rows loaded.
        The tables are truncated first, so COPY can write their rows already frozen: no
        later pass (the first read, VACUUM) rewrites every page to set hint bits. Tables
        loaded through their root (:attr:`CopyTable.via`) are neither: other parts' rows may
        land in them."""
        frames = TableFrames(label, len(tables))
        pieces = (piece for chunk in chunks for piece in frames.feed(chunk))
        counts: dict[str, int] = {}
        direct = [table.identifier for table in tables if table.via is None]
        with (
            self._connect(loading=True) as conn,
            _cancelled_with(conn, group) as canceller,
            conn.transaction(),
        ):
            # Names in the connection's encoding, before the session takes the database's
            # (SQL_ASCII: the connection's UTF-8, which the server takes as it is).
            truncate = sql.SQL("TRUNCATE ONLY {}").format(sql.SQL(", ").join(direct))
            statements = [
                copy_in_statement(table, freeze=table.via is None).as_bytes(conn)
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

    def _partitions(self) -> set[tuple[str, str]]:
        """This database's partitions, ``(schema, name)``."""
        with self._connect() as conn:
            return {
                (schema, name)
                for schema, name in conn.execute(
                    "SELECT n.nspname, c.relname FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relispartition"
                )
            }

    def _post_data_entries(
        self, tool: PgTool, schema_file: Path, partitions: set[tuple[str, str]]
    ) -> list[_PostDataEntry]:
        """The schema's post-data entries (``pg_restore -l`` lines) in the archive's order.

        An entry's owner is the one table whose rows are all it waits for: an index, a
        constraint other than a foreign key, a trigger, that depends on no other post-data
        entry but that table's. The others restore at the end, in pg_restore's dependency
        order, but for the triggers of partitions (and any trigger whose table the listing
        does not tell): a partition's trigger state must follow its parent's trigger, which
        pg_dump does not always record as a dependency; those restore last, in the archive's
        order, one at a time."""
        try:
            listing, verbose, script = (
                subprocess.run(
                    [tool.path, *args, str(schema_file)],
                    capture_output=True,
                    check=True,
                    **_DATABASE_TEXT,
                ).stdout
                for args in (
                    ["--list", "--section=post-data"],
                    ["--list", "--verbose"],
                    ["--section=post-data", "--file=-"],
                )
            )
        except subprocess.CalledProcessError as exc:
            raise DatabaseError(f"pg_restore cannot read the schema part: {exc.stderr}") from exc
        index_table = {
            (_unquote(m.group(2)), _unquote(m.group(1))): _unquote(m.group(3))
            for m in _CREATE_INDEX.finditer(script)
        }
        dependencies = _dependencies(verbose)
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

    def drop(self) -> None:
        """DROP DATABASE, whatever it holds: its subscriptions, which DROP DATABASE refuses,
        are dropped first without touching their publishers' slots."""
        name = sql.Identifier(self.database_name)
        with self._connect(MAINTENANCE_DB) as conn:
            row = conn.execute(_SUBSCRIBED_QUERY, (self.database_name,)).fetchone()
            if row is not None and row[1]:
                if not row[0]:  # a retired database no longer takes connections
                    conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(name))
                self._drop_subscriptions()
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        self._release()

    def _drop_subscriptions(self) -> None:
        """Drop this database's subscriptions, each disabled and detached from its slot first
        (a drop would otherwise connect to the publisher to drop the slot)."""
        with self._connect() as conn:
            names = [
                name
                for (name,) in conn.execute(
                    "SELECT subname FROM pg_subscription WHERE subdbid ="
                    " (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            ]
            for name in names:
                subscription = sql.Identifier(name)
                for statement in (
                    "ALTER SUBSCRIPTION {} DISABLE",
                    "ALTER SUBSCRIPTION {} SET (slot_name = NONE)",
                    "DROP SUBSCRIPTION {}",
                ):
                    conn.execute(sql.SQL(statement).format(subscription))

    def owner(self) -> str:
        with self._connect(MAINTENANCE_DB) as conn:
            row = conn.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                (self.database_name,),
            ).fetchone()
        if row is None:
            raise DatabaseError(f"database {self.display} does not exist")
        return str(row[0])

    def replace_with(self, staging: Any, overwrite: bool) -> None:
        """Make ``staging`` (a restored sibling) this database by renaming: at every instant
        this name holds the old database or the new one, accepting connections.

        Without ``overwrite`` it is one rename, which fails if this name appeared meanwhile.
        With it, :meth:`_swap` renames this database to a claimed ``warroom_retired_*`` name and
        ``staging`` to this name in one transaction, then the retired database is dropped. A
        hang-up, SIGTERM or Ctrl-C meanwhile waits until that is done; a kill or a server crash
        leaves a work database that the next restore or restore test on the server drops."""
        if not overwrite:
            with self._connect(MAINTENANCE_DB) as conn:
                conn.execute(
                    _RENAME.format(
                        sql.Identifier(staging.database_name), sql.Identifier(self.database_name)
                    )
                )
            staging._release()
            return
        retired = self.sibling(f"warroom_retired_{uuid.uuid4().hex[:12]}")
        retired._claim_name()  # killed before its DROP, it is swept by the next restore
        try:
            with signals_deferred():
                self._swap(staging, retired)
                staging._release()
                retired.drop()
        finally:
            retired._release()

    def _swap(self, staging: PostgresEngine, retired: PostgresEngine) -> None:
        """Rename this database to ``retired`` and ``staging`` to this name, in one transaction.

        Why there is no window: nothing outside that transaction changes any database (no
        ALLOW_CONNECTIONS, no connection limit, nothing a kill could leave behind). The first
        rename takes PostgreSQL's ACCESS EXCLUSIVE lock on this database, held until the
        transaction ends, then waits up to 5 s (PostgreSQL's own wait) for the other sessions
        on it to end. A session connecting from then on waits for the lock before it joins the
        database, so the sessions that a second connection keeps terminating meanwhile
        (:meth:`_sessions_ended`) are the last: the rename goes through once they are gone.
        Until COMMIT, every other session sees the old database under this name; a kill of this
        process (its connection closes, the transaction rolls back), or a server crash (crash
        recovery discards the uncommitted transaction) leaves it there, accepting connections.
        After COMMIT the new one is there; the sessions that waited are refused once ("it
        seems to have just been dropped or renamed") and reconnect to it. A session that will
        not end (a prepared transaction, one we may not terminate) makes the attempt fail and
        roll back; after SWAP_ATTEMPTS the swap is refused, this database untouched."""
        name = sql.Identifier(self.database_name)
        for attempt in range(1, SWAP_ATTEMPTS + 1):
            refused: list[WarroomError] = []
            try:
                with self._connect(MAINTENANCE_DB) as conn, conn.transaction():
                    # A frozen process must not hold this database's lock for long.
                    conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = '{SWAP_WAIT}'")
                    conn.execute(f"SET LOCAL lock_timeout = '{SWAP_WAIT}'")
                    with self._sessions_ended(refused):
                        conn.execute(_RENAME.format(name, sql.Identifier(retired.database_name)))
                    fault_point("swap-locked")
                    conn.execute(_RENAME.format(sql.Identifier(staging.database_name), name))
                    fault_point("swap-renamed")
                fault_point("swap-committed")
                return
            except DatabaseError as exc:
                if refused:
                    raise refused[0] from exc
                if not isinstance(exc.__cause__, _BUSY):
                    raise  # the connection was lost, perhaps in COMMIT: say no more than that
                if attempt < SWAP_ATTEMPTS:
                    continue
                raise DatabaseError(
                    f"the restored database could not replace {self.display}, which is "
                    f"unchanged: {exc.message}",
                    database=self.display,
                ) from exc

    @contextmanager
    def _sessions_ended(self, refused: list[WarroomError]) -> Iterator[None]:
        """While inside, a thread keeps terminating every session on this database from a
        connection of its own; why it could not (permission denied) is added to ``refused``
        once the block is left."""
        stop = threading.Event()

        def reap() -> None:
            try:
                with self._connect(MAINTENANCE_DB) as conn:
                    while True:
                        conn.execute(_TERMINATE, (self.database_name,))
                        if stop.wait(REAP_INTERVAL):
                            return
            except WarroomError as exc:
                refused.append(exc)

        reaper = threading.Thread(target=reap, name="warroom-reaper", daemon=True)
        reaper.start()
        try:
            yield
        finally:
            stop.set()
            reaper.join()
