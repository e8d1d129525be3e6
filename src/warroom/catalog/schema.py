"""Table definitions of the catalog. Every table is prefixed ``warroom_``: the catalog may share
a PostgreSQL database with the application it protects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every dialect (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


schema_version = Table(
    "warroom_schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", UTCDateTime, nullable=False),
)

checkpoints = Table(
    "warroom_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("type", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("status", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("source", String(500)),  # for people: the URL without its password
    Column("source_id", String(500)),  # database backups: Source.id (see warroom.database)
    Column("safety", Boolean, nullable=False, default=False),
    Column("size_original", BigInteger),
    Column("size_stored", BigInteger),
    Column("checksum", String(64)),
    Column("verified_at", UTCDateTime),
    Column("details", JSON, nullable=False, default=dict),
    UniqueConstraint("type", "name", name="warroom_checkpoints_type_name"),
    Index("warroom_checkpoints_source", "type", "source_id"),
)

workflow_executions = Table(
    "warroom_workflow_executions",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("workflow", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("inputs", LargeBinary, nullable=False),
    Column("output", LargeBinary),
    Column("error", Text),
    Column("runs", Integer, nullable=False, default=0),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("lease_owner", String(200)),
    Column("lease_expires_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    # Queued executions (migration 7): the queue, its order, and the catalog's time of claim.
    Column("queue_name", String(200)),
    Column("priority", Integer, nullable=False, default=0),
    Column("deduplication_id", String(200)),  # unique per queue until the execution ends
    Column("dequeued_at", UTCDateTime),
    Index("warroom_workflow_executions_status", "status", "lease_expires_at"),
    Index("warroom_workflow_executions_queue", "queue_name", "status", "priority", "created_at"),
    Index("warroom_workflow_executions_dedup", "queue_name", "deduplication_id", unique=True),
)

workflow_steps = Table(
    "warroom_workflow_steps",
    metadata,
    Column(
        "execution_id",
        String(128),
        ForeignKey("warroom_workflow_executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("number", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("result", LargeBinary),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("duration_seconds", Float),
    Column("metadata", JSON),
    PrimaryKeyConstraint("execution_id", "number", name="warroom_workflow_steps_pk"),
)

workflow_messages = Table(
    "warroom_workflow_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # the order of arrival
    Column(
        "execution_id",
        String(128),
        ForeignKey("warroom_workflow_executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("topic", String(200), nullable=False),
    Column("message_key", String(200), nullable=False),  # a resent message has the same key
    Column("value", LargeBinary, nullable=False),
    Column("consumed", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("execution_id", "message_key", name="warroom_workflow_messages_key"),
    Index("warroom_workflow_messages_topic", "execution_id", "topic", "consumed"),
)

workflow_events = Table(
    "warroom_workflow_events",
    metadata,
    Column(
        "execution_id",
        String(128),
        ForeignKey("warroom_workflow_executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("key", String(200), nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("execution_id", "key", name="warroom_workflow_events_pk"),
)

workflow_workers = Table(
    "warroom_workflow_workers",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("queues", JSON, nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # running, draining, handing-back, stopped
    Column("active", Integer, nullable=False, default=0),
    Column("completed", Integer, nullable=False, default=0),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),  # on the catalog's clock
)

api_tokens = Table(
    "warroom_api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
)

jobs = Table(
    "warroom_jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("params", JSON, nullable=False),
    Column("progress", JSON),
    Column("result", JSON),
    Column("error", JSON),
    Column("owner", String(200)),
    Column("retry_of", String(32)),
    Column("created_by", String(200)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("heartbeat_at", UTCDateTime),
    Index("warroom_jobs_status", "status", "kind"),
)

audit_log = Table(
    "warroom_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("role", String(16)),
    Column("method", String(8), nullable=False),
    Column("path", String(500), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("details", JSON),
    Index("warroom_audit_at", "at"),
)

schedule_runs = Table(
    "warroom_schedule_runs",
    metadata,
    Column("job", String(64), nullable=False),
    Column("slot", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("owner", String(200)),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("duration_seconds", Float),
    Column("result", JSON),
    Column("error", Text),
    Column("heartbeat_at", UTCDateTime),  # refreshed by the owner while the slot runs
    PrimaryKeyConstraint("job", "slot", name="warroom_schedule_runs_pk"),
)
