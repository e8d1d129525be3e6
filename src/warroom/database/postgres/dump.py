"""Logical backups of one consistent snapshot.

A backup exports a snapshot from a read-only repeatable-read transaction, which also holds
ACCESS SHARE locks on every table until the backup ends (as pg_dump does). Its parts:

- ``schema``: ``pg_dump --schema-only`` (custom format, uncompressed: storage compresses);
- ``copy-NNNNN``: table rows in COPY text format (:mod:`warroom.database.pgcopy`), written by
  ``psql`` in the snapshot: a part per big table, small tables sharing parts. Each table's
  rows are counted in the stream as it is stored;
- ``data-rest``: ``pg_dump --data-only`` of the rest (the large objects, the data of
  extensions' configuration tables);
- ``sequences`` and ``matviews``: the sequences' values and the populated materialized views,
  read by the snapshot's own connection.

The parts are written ``jobs`` at a time. The database's own properties, which ``pg_dump``
without ``--create`` leaves out, are recorded in the manifest.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Collection, Iterator
from graphlib import TopologicalSorter
from pathlib import Path
from subprocess import PIPE
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from warroom.database import DumpInfo, PartRecord, WritePart
from warroom.database.pgcopy import (
    CopyTable,
    TableFrames,
    copy_out_script,
    plan_parts,
)
from warroom.database.pgtools import PgTool, ProcessGroup, run_parallel
from warroom.database.postgres.connection import PostgresConnection
from warroom.errors import (
    DatabaseError,
)

__all__ = ["CHILD_LOCK_WAIT", "MATVIEWS_PART", "SEQUENCES_BATCH", "SEQUENCES_PART", "LogicalDump"]

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


def _pattern(schema: str, table: str) -> str:
    """A pg_dump ``--table`` pattern matching exactly this table (quotes make it literal)."""
    return '"{}"."{}"'.format(schema.replace('"', '""'), table.replace('"', '""'))


def _copy_out(conn: Any, query: sql.Composable) -> Iterator[bytes]:
    """The rows of ``query`` as COPY text, in chunks."""
    with conn.cursor().copy(sql.SQL("COPY ({}) TO STDOUT").format(query)) as copy:
        yield from (bytes(chunk) for chunk in copy)


class LogicalDump(PostgresConnection):
    """The logical backup of a PostgreSQL database, and the row counts that check a restore."""

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
