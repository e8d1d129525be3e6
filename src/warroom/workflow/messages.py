"""Messages to executions and events they publish, in the catalog.

A message is keyed by (destination execution, message key): sending it again with the same key
changes nothing, so a sender that retries, or a workflow whose send is replayed (its key is
derived from its own id and step number), delivers it once. A receiving workflow consumes the
oldest unconsumed message of a topic in the same transaction that records its ``recv`` step,
under its lease, so a message is received exactly once even across a crash. Events are
(execution, key) -> latest value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from warroom.catalog import Catalog
from warroom.catalog.schema import workflow_events as events
from warroom.catalog.schema import workflow_executions as executions
from warroom.catalog.schema import workflow_messages as messages
from warroom.catalog.schema import workflow_steps as steps
from warroom.workflow.store import RUNNING, StepRow

__all__ = ["MessageStore"]


class MessageStore:
    """Each method is one transaction."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        postgres = catalog.engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if postgres else sqlite.insert

    def send(self, execution_id: str, topic: str, key: str, value: bytes, now: datetime) -> bool:
        """Deliver a message; False when one with this key was delivered already."""
        statement = (
            self._insert(messages)
            .values(
                execution_id=execution_id,
                topic=topic,
                message_key=key,
                value=value,
                consumed=False,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["execution_id", "message_key"])
            .returning(messages.c.id)
        )
        with self.catalog.single() as conn:
            return conn.execute(statement).first() is not None

    def receive(self, execution_id: str, owner: str, topic: str, step: StepRow) -> bool | None:
        """Consume the oldest message of ``topic`` and record it as ``step``'s result, if
        ``owner`` holds the execution's lease. True when received (``step.result`` is set),
        False when there is none, None when the lease is lost."""
        m = messages.c
        with self.catalog.transaction() as conn:
            held = conn.execute(
                select(executions.c.id)
                .where(
                    executions.c.id == execution_id,
                    executions.c.status == RUNNING,
                    executions.c.lease_owner == owner,
                )
                .with_for_update()
            ).first()
            if held is None:
                return None
            row = conn.execute(
                select(m.id, m.value)
                .where(m.execution_id == execution_id, m.topic == topic, m.consumed.is_(False))
                .order_by(m.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return False
            conn.execute(update(messages).where(m.id == row.id).values(consumed=True))
            step.result = row.value
            values = {name: getattr(step, name) for name in StepRow.__dataclass_fields__}
            record = self._insert(steps).values(execution_id=execution_id, **values)
            # Replaces the started step that holds the wait's deadline, if there is one.
            conn.execute(
                record.on_conflict_do_update(
                    index_elements=["execution_id", "number"],
                    set_={name: record.excluded[name] for name in values if name != "number"},
                )
            )
            return True

    def set_event(self, execution_id: str, key: str, value: bytes, now: datetime) -> None:
        statement = self._insert(events).values(
            execution_id=execution_id, key=key, value=value, updated_at=now
        )
        statement = statement.on_conflict_do_update(
            index_elements=["execution_id", "key"],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        )
        with self.catalog.single() as conn:
            conn.execute(statement)

    def events(self, execution_id: str, key: str | None = None) -> dict[str, bytes]:
        """The execution's events (or only ``key``), key -> stored value."""
        query = select(events.c.key, events.c.value).where(events.c.execution_id == execution_id)
        if key is not None:
            query = query.where(events.c.key == key)
        with self.catalog.single() as conn:
            return {str(k): bytes(v) for k, v in conn.execute(query)}

    def pending(self, execution_id: str) -> list[dict[str, Any]]:
        """Unconsumed messages of an execution: topic, key and arrival time."""
        m = messages.c
        with self.catalog.single() as conn:
            rows = conn.execute(
                select(m.topic, m.message_key, m.created_at)
                .where(m.execution_id == execution_id, m.consumed.is_(False))
                .order_by(m.id)
            )
            return [{"topic": t, "message_key": k, "created_at": c.isoformat()} for t, k, c in rows]
