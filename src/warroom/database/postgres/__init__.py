"""The PostgreSQL engine: logical backups of one consistent snapshot, parallel restores,
physical base backups and WAL administration, and the lifecycle of the databases it restores.

One module per idea, each a class over the same state:

- :mod:`.connection` — :class:`~.connection.PostgresConnection`, the base: the parsed URL (the
  password kept apart), connection strings, ``_connect``, the client tools and how they run,
  identity, source, sibling. It holds all the state; the others add behaviour only.
- :mod:`.dump` — :class:`~.dump.LogicalDump`: the logical backup (schema, copy parts,
  data-rest, sequences, matviews), table locks, database properties, row counts.
- :mod:`.load` — :class:`~.load.LogicalLoad`: the logical restore (pre-data, copy-in,
  post-data entries as their tables' rows are in, sequences, matview refresh) and the
  database-level properties applied after it; :mod:`.predata` plans its pre-data in
  parallel sessions.
- :mod:`.physical` — :class:`~.physical.PhysicalAndWal`: base backups, restore points, the
  archiver's status, server programs and settings (what :class:`~warroom.database.WalServer`
  offers).
- :mod:`.lifecycle` — :class:`~.lifecycle.DatabaseLifecycle`: work-database claims and their
  sweep, create, drop (subscriptions first), owner, replace by renaming (``_swap``).

Each of them subclasses :class:`~.connection.PostgresConnection` and needs nothing of the
others (but the part names :mod:`.load` reads from :mod:`.dump`), so each type-checks on its
own; :class:`PostgresEngine` composes them and is the :class:`~warroom.database.DatabaseEngine`
callers get (it gives the load a way to start over: drop, then create the database again).
Callers never test for it: they ask the engine (``supports_physical_backups``,
``wal_server()``, ``archiving_status()``, ``sweep_abandoned()``).
"""

from __future__ import annotations

from collections.abc import Callable

from warroom.database import LoadReport, PartRecord, ReadPart
from warroom.database.postgres.connection import (
    LOAD_OPTIONS,
    MAINTENANCE_DB,
    MAX_DB_NAME,
    SESSION_OPTIONS,
    PostgresConnection,
)
from warroom.database.postgres.dump import (
    CHILD_LOCK_WAIT,
    MATVIEWS_PART,
    SEQUENCES_BATCH,
    SEQUENCES_PART,
    LogicalDump,
)
from warroom.database.postgres.lifecycle import (
    REAP_INTERVAL,
    SWAP_ATTEMPTS,
    SWAP_WAIT,
    WORK_CLAIM_KEY,
    WORK_DATABASE,
    DatabaseLifecycle,
)
from warroom.database.postgres.load import (
    DATABASE_PRIVILEGES,
    LIST_SETTINGS,
    LogicalLoad,
    split_list_setting,
)
from warroom.database.postgres.load import _dependencies as _dependencies
from warroom.database.postgres.physical import PhysicalAndWal

__all__ = [
    "CHILD_LOCK_WAIT",
    "DATABASE_PRIVILEGES",
    "LIST_SETTINGS",
    "LOAD_OPTIONS",
    "MAINTENANCE_DB",
    "MATVIEWS_PART",
    "MAX_DB_NAME",
    "REAP_INTERVAL",
    "SEQUENCES_BATCH",
    "SEQUENCES_PART",
    "SESSION_OPTIONS",
    "SWAP_ATTEMPTS",
    "SWAP_WAIT",
    "WORK_CLAIM_KEY",
    "WORK_DATABASE",
    "DatabaseLifecycle",
    "LogicalDump",
    "LogicalLoad",
    "PhysicalAndWal",
    "PostgresConnection",
    "PostgresEngine",
    "split_list_setting",
]


class PostgresEngine(LogicalDump, LogicalLoad, PhysicalAndWal, DatabaseLifecycle):
    """One PostgreSQL database. The password never reaches argv, logs or messages."""

    def load(
        self,
        parts: list[PartRecord],
        read_part: ReadPart,
        jobs: int,
        dumped_with: str,
        alongside: Callable[[dict[str, int]], None] | None = None,
        start_over: Callable[[], None] | None = None,
    ) -> LoadReport:
        """LogicalLoad's, able to start over (its parallel pre-data failed) in this database
        created anew, with the same encoding, locale and owner."""
        return super().load(
            parts, read_part, jobs, dumped_with, alongside, start_over or self._create_again
        )

    def _create_again(self) -> None:
        with self._connect() as conn:
            properties = self._database_properties(conn)
        self.drop()
        self.create_empty(properties)
