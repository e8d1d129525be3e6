"""Named queues of workflow executions, and how workers claim from them.

A queue is declared in code, the same in every process that uses it:
``engine.queue("deploys", concurrency=2, worker_concurrency=1, rate_limit=(10, 60),
priority=True)``. ``queue.enqueue(workflow, ...)`` inserts an ``enqueued`` execution in the
catalog; workers (:mod:`warroom.workflow.worker`) claim it, which marks it running under the
claimer's lease, so it runs once; a dead worker's claimed executions are taken over when their
lease expires on the catalog's clock, like any other.

Claims: one transaction that picks the oldest enqueued executions (by ``priority`` first, lower
first, on a priority queue) ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so claimers never wait for
nor take one another's rows, and marks them running. A queue with a global limit
(``concurrency``: running executions across all workers; ``rate_limit``: (claims, per seconds),
counted on the catalog's clock) first takes a transaction lock on the queue's name, so its
counts and its claim are one decision across hosts. On SQLite every write transaction is
``BEGIN IMMEDIATE`` and so already one at a time. ``worker_concurrency`` is each worker's own
count, kept by the worker.

A ``deduplication_id`` is unique among a queue's executions until the one holding it ends:
enqueueing another is a ConflictError naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select, text, update

from warroom.catalog import Catalog
from warroom.catalog.schema import workflow_executions as executions
from warroom.errors import InputError
from warroom.workflow.store import ENQUEUED, RUNNING, ExecutionRow, SqlClock, execution_row

if TYPE_CHECKING:
    from warroom.workflow.engine import AutomationEngine
    from warroom.workflow.handles import WorkflowHandle

__all__ = ["Queue", "QueueStore"]


@dataclass
class Queue:
    """A named queue of an engine (see the module docstring for the limits)."""

    name: str
    engine: AutomationEngine = field(repr=False)
    concurrency: int | None = None
    worker_concurrency: int | None = None
    rate_limit: tuple[int, float] | None = None
    priority: bool = False

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 200:
            raise InputError("a queue name must be 1 to 200 characters long")
        limits = (self.concurrency, self.worker_concurrency)
        if any(limit is not None and limit < 1 for limit in limits) or (
            self.rate_limit is not None and (self.rate_limit[0] < 1 or self.rate_limit[1] <= 0)
        ):
            raise InputError(
                f"queue {self.name!r}: concurrency and worker_concurrency are 1 or more, "
                "rate_limit is (claims >= 1, seconds > 0)"
            )

    @property
    def global_limits(self) -> bool:
        return self.concurrency is not None or self.rate_limit is not None

    def enqueue(
        self,
        workflow: str,
        /,
        *args: Any,
        execution_id: str | None = None,
        deduplication_id: str | None = None,
        priority: int = 0,
        **kwargs: Any,
    ) -> WorkflowHandle:
        """Enqueue an execution of ``workflow`` and return its handle at once. ``priority``
        (a priority queue only): lower runs first, 0 by default. The same ``execution_id``
        enqueued again is the same execution; inside a running workflow the id is derived
        from the parent's, so a resumed parent does not enqueue twice."""
        if priority and not self.priority:
            raise InputError(f"queue {self.name!r} has no priorities: declare it priority=True")
        if deduplication_id is not None and not 1 <= len(deduplication_id) <= 200:
            raise InputError("a deduplication id must be 1 to 200 characters long")
        placement = (self.name, priority, deduplication_id)
        return self.engine._enqueue(workflow, args, kwargs, execution_id, placement)


class _QueueLock:
    """Serializes the claims of one queue (one subclass per dialect)."""

    @staticmethod
    def for_dialect(name: str) -> _QueueLock:
        return _PostgresQueueLock() if name == "postgresql" else _QueueLock()

    def take(self, conn: Connection, queue: str) -> None:
        """SQLite: the transaction is ``BEGIN IMMEDIATE``, the catalog's one writer."""


class _PostgresQueueLock(_QueueLock):
    def take(self, conn: Connection, queue: str) -> None:
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:queue, 7))"), {"queue": queue}
        )


class QueueStore:
    """The catalog's side of queues: claims and counts."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        dialect = catalog.engine.dialect.name
        self.clock = SqlClock.for_dialect(dialect)
        self._lock = _QueueLock.for_dialect(dialect)

    def claim(
        self, queue: Queue, most: int, owner: str, now: datetime, lease: timedelta
    ) -> list[ExecutionRow]:
        """Claim up to ``most`` enqueued executions of ``queue`` within its global limits, as
        running under ``owner``'s lease; returns them (in claim order)."""
        q = executions.c
        with self.catalog.transaction() as conn:
            if queue.global_limits:
                self._lock.take(conn, queue.name)
                most = min(most, self._room(conn, queue))
            if most <= 0:
                return []
            order = [q.priority, q.created_at, q.id] if queue.priority else [q.created_at, q.id]
            picked = (
                select(q.id)
                .where(q.queue_name == queue.name, q.status == ENQUEUED)
                .order_by(*order)
                .limit(most)
                .with_for_update(skip_locked=True)
            )
            # Two statements: PostgreSQL may run an IN (... LIMIT n FOR UPDATE SKIP LOCKED)
            # subquery more than once in one UPDATE and so take more than n rows.
            ids = list(conn.execute(picked).scalars())
            if not ids:
                return []
            rows = conn.execute(
                update(executions)
                .where(q.id.in_(ids), q.status == ENQUEUED)
                .values(
                    status=RUNNING,
                    lease_owner=owner,
                    lease_expires_at=self.clock.later(lease),
                    runs=q.runs + 1,
                    started_at=func.coalesce(q.started_at, now),
                    dequeued_at=self.clock.now(),
                    updated_at=now,
                )
                .returning(*executions.c)
            ).all()
        claimed = [execution_row(row._mapping) for row in rows]
        return sorted(
            claimed, key=lambda r: (r.priority if queue.priority else 0, r.created_at, r.id)
        )

    def _room(self, conn: Connection, queue: Queue) -> int:
        """How many more executions the queue's global limits let start now."""
        q, room = executions.c, 1 << 30
        if queue.concurrency is not None:
            running = conn.execute(
                select(func.count()).where(q.queue_name == queue.name, q.status == RUNNING)
            ).scalar_one()
            room = queue.concurrency - int(running)
        if queue.rate_limit is not None:
            limit, seconds = queue.rate_limit
            recent = conn.execute(
                select(func.count()).where(
                    q.queue_name == queue.name,
                    q.dequeued_at >= self.clock.later(timedelta(seconds=-seconds)),
                )
            ).scalar_one()
            room = min(room, limit - int(recent))
        return room

    def holder_of(self, queue: str, deduplication_id: str) -> str | None:
        """The execution of ``queue`` that holds ``deduplication_id`` now, if any."""
        q = executions.c
        with self.catalog.single() as conn:
            return conn.execute(
                select(q.id).where(q.queue_name == queue, q.deduplication_id == deduplication_id)
            ).scalar()

    def depths(self) -> dict[tuple[str, str], int]:
        """Executions per (queue, status), for the metrics."""
        q = executions.c
        with self.catalog.single() as conn:
            rows = conn.execute(
                select(q.queue_name, q.status, func.count())
                .where(q.queue_name.is_not(None))
                .group_by(q.queue_name, q.status)
            ).all()
        return {(str(name), str(status)): int(count) for name, status, count in rows}
