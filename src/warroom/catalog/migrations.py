"""Versioned schema migrations of the catalog.

``MIGRATIONS`` is append-only: version N's function brings a catalog at version N-1 to N. The
applied versions are recorded in ``warroom_schema_version``. Migrating takes a lock first (an
advisory lock on PostgreSQL; on SQLite every catalog transaction is ``BEGIN IMMEDIATE``) so
that several processes starting at once apply each migration exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, func, insert, inspect, select, text, update

from warroom.catalog import schema

MigrationStep = Callable[[Connection], None]

MIGRATION_LOCK_KEY = 0x57524B01  # "WRK" + 1: any constant unique to this product


def _v1_checkpoints(conn: Connection) -> None:
    schema.checkpoints.create(conn)


def _v2_workflows(conn: Connection) -> None:
    schema.workflow_executions.create(conn)
    schema.workflow_steps.create(conn)


def _v3_service(conn: Connection) -> None:
    for table in (schema.api_tokens, schema.jobs, schema.audit_log):
        table.create(conn)


def _v4_schedule(conn: Connection) -> None:
    schema.schedule_runs.create(conn)


def _v5_schedule_heartbeat(conn: Connection) -> None:
    """Scheduled runs get a heartbeat (a catalog made at version 4 by today's code has it)."""
    table = schema.schedule_runs
    if "heartbeat_at" not in {column["name"] for column in inspect(conn).get_columns(table.name)}:
        column_type = table.c.heartbeat_at.type.compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN heartbeat_at {column_type}"))


def _v6_sources(conn: Connection) -> None:
    """Database checkpoints belong to a source and may be safety backups; ``verified`` (a
    passed restore test) is now called ``restore-tested``. Rows indexed before keep a null
    ``source_id`` (their source is read from their label, see :mod:`warroom.sources`) and get
    ``safety`` from their name, which is all older versions knew; ``catalog rebuild`` reads
    the manifests' own record."""
    table = schema.checkpoints
    columns = {column["name"] for column in inspect(conn).get_columns(table.name)}
    if "source_id" not in columns:
        column_type = table.c.source_id.type.compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN source_id {column_type}"))
    if "safety" not in columns:
        conn.execute(
            text(f"ALTER TABLE {table.name} ADD COLUMN safety BOOLEAN NOT NULL DEFAULT false")
        )
        conn.execute(
            update(table)
            .where(table.c.type == "database", table.c.name.startswith("safety-"))
            .values(safety=True)
        )
    index = next(i for i in table.indexes if i.name == "warroom_checkpoints_source")
    index.create(conn, checkfirst=True)
    conn.execute(update(table).where(table.c.status == "verified").values(status="restore-tested"))


def _v7_queues(conn: Connection) -> None:
    """Workflow queues, messages, events and workers. Executions get their queue, priority,
    deduplication id and claim time (a catalog whose table was made by today's code at
    version 2 has them)."""
    table = schema.workflow_executions
    columns = {column["name"] for column in inspect(conn).get_columns(table.name)}
    for name in ("queue_name", "priority", "deduplication_id", "dequeued_at"):
        if name not in columns:
            column = table.c[name]
            column_type = column.type.compile(dialect=conn.dialect)
            default = " NOT NULL DEFAULT 0" if name == "priority" else ""
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {name} {column_type}{default}"))
    for index in table.indexes:
        index.create(conn, checkfirst=True)
    for new in (schema.workflow_messages, schema.workflow_events, schema.workflow_workers):
        new.create(conn, checkfirst=True)


MIGRATIONS: list[tuple[int, MigrationStep]] = [
    (1, _v1_checkpoints),
    (2, _v2_workflows),
    (3, _v3_service),
    (4, _v4_schedule),
    (5, _v5_schedule_heartbeat),
    (6, _v6_sources),
    (7, _v7_queues),
]

HEAD = MIGRATIONS[-1][0]


def migrate(engine: Engine) -> int:
    """Apply every migration newer than the catalog's version; return the version reached."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        schema.schema_version.create(conn, checkfirst=True)
        current = conn.execute(select(func.max(schema.schema_version.c.version))).scalar() or 0
        for version, step in MIGRATIONS:
            if version > current:
                step(conn)
                conn.execute(
                    insert(schema.schema_version).values(
                        version=version, applied_at=datetime.now(UTC)
                    )
                )
                current = version
        return current
