"""Physical backups and WAL administration: base backups of the whole cluster, restore points,
the archiver's status, and the server-side programs and settings that WAL archiving needs.
"""

from __future__ import annotations

import base64
import re
from subprocess import PIPE
from typing import Any, Self

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from warroom.database import DumpInfo, WritePart
from warroom.database.postgres.connection import PostgresConnection
from warroom.errors import (
    ConfigurationError,
    DatabaseError,
)

__all__ = ["PhysicalAndWal"]

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


class PhysicalAndWal(PostgresConnection):
    """A PostgreSQL server's physical backups and WAL archiving: its
    :class:`~warroom.database.WalServer` (:meth:`wal_server`)."""

    supports_physical_backups = True

    def wal_server(self) -> Self:
        """This server's WAL administration: the engine itself."""
        return self

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
