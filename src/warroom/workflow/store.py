"""The workflow tables of the catalog: executions, their leases and their step checkpoints.

Durable effects have deterministic keys. A step checkpoint is keyed by (execution id, step
number), and a succeeded step is written once and never replaced. Every write a worker makes
for a running execution is conditional on still holding that execution's lease, so a worker
whose lease was taken over cannot record anything more.

Leases are set and compared on the catalog database's clock (:class:`SqlClock`), never on a
worker's: a worker whose clock runs ahead cannot see a live lease as expired. On PostgreSQL
that is the server's ``CURRENT_TIMESTAMP``. A SQLite catalog is a file on one host, and its
``'now'`` is read by each process from that host's system clock: all workers share it, but a
process whose own notion of time is shifted (``faketime``, a time namespace) is believed.
The other timestamps (created, started, finished, updated) come from the engine's clock, so
retention can be tested with an injected one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    String,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from warroom.catalog import Catalog
from warroom.catalog.schema import workflow_executions as executions
from warroom.catalog.schema import workflow_steps as steps

__all__ = ["ExecutionRow", "SqlClock", "StepRow", "WorkflowStore"]

RUNNING, PENDING, SUCCEEDED, FAILED, CANCELLED, ENQUEUED = (
    "running",
    "pending",
    "succeeded",
    "failed",
    "cancelled",
    "enqueued",
)
STARTED = "started"  # a step begun and not finished: a critical step, or a wait's deadline
RERUN = "failed-rerun"  # a step failure that ended its execution: run again on resume
STATUSES = (ENQUEUED, PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)


@dataclass
class StepRow:
    number: int
    name: str
    kind: str
    status: str
    result: bytes | None
    error: str | None
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    metadata: dict[str, Any] | None = None


@dataclass
class ExecutionRow:
    id: str
    workflow: str
    status: str
    inputs: bytes
    output: bytes | None
    error: str | None
    runs: int
    cancel_requested: bool
    lease_owner: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    queue_name: str | None = None
    priority: int = 0
    deduplication_id: str | None = None


class SqlClock(ABC):
    """The catalog database's current time, as SQL expressions (one subclass per dialect)."""

    @staticmethod
    def for_dialect(name: str) -> SqlClock:
        return _PostgresClock() if name == "postgresql" else _SqliteClock()

    @abstractmethod
    def now(self) -> Any:
        """The database's time now."""

    @abstractmethod
    def later(self, delta: timedelta) -> Any:
        """The time ``delta`` from now."""


class _PostgresClock(SqlClock):
    def now(self) -> Any:
        return func.current_timestamp()

    def later(self, delta: timedelta) -> Any:
        return func.current_timestamp() + func.make_interval(
            0, 0, 0, 0, 0, 0, bindparam("lease_s", delta.total_seconds(), type_=Float())
        )


class _SqliteClock(SqlClock):
    """UTC as the text SQLAlchemy stores SQLite datetimes in (milliseconds are enough)."""

    FORMAT = "%Y-%m-%d %H:%M:%f"

    def now(self) -> Any:
        return func.strftime(self.FORMAT, "now")

    def later(self, delta: timedelta) -> Any:
        return func.strftime(self.FORMAT, "now", f"{delta.total_seconds():+.3f} seconds")


def execution_row(row: Any) -> ExecutionRow:
    return ExecutionRow(**{key: row[key] for key in ExecutionRow.__dataclass_fields__})


def _step(row: Any) -> StepRow:
    return StepRow(**{key: row[key] for key in StepRow.__dataclass_fields__})


class WorkflowStore:
    """Reads and writes of workflow executions and steps; each method is one transaction."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        dialect = catalog.engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self.clock = SqlClock.for_dialect(dialect)
        self._build_record_statements()

    # -- executions -------------------------------------------------------------------------

    def create_execution(
        self,
        execution_id: str,
        workflow: str,
        inputs: bytes,
        now: datetime,
        status: str = PENDING,
        owner: str | None = None,
        lease: timedelta | None = None,
        queue: tuple[str, int, str | None] | None = None,
    ) -> bool:
        """Insert an execution; False when one with this id (or, on a queue, this
        deduplication id) already exists (left as it is). With ``owner``, it is inserted
        running under that worker's lease; with ``queue`` (name, priority, deduplication id),
        enqueued there."""
        values: dict[str, Any] = {
            "id": execution_id,
            "workflow": workflow,
            "status": status,
            "inputs": inputs,
            "runs": 0,
            "cancel_requested": False,
            "created_at": now,
            "updated_at": now,
        }
        if owner is not None and lease is not None:
            values.update(
                status=RUNNING,
                lease_owner=owner,
                lease_expires_at=self.clock.later(lease),
                runs=1,
                started_at=now,
            )
        if queue is not None:
            values.update(
                status=ENQUEUED, queue_name=queue[0], priority=queue[1], deduplication_id=queue[2]
            )
        statement = (
            self._insert(executions)
            .values(**values)
            .on_conflict_do_nothing()
            .returning(executions.c.id)  # rowcount is not reliable for INSERTs
        )
        with self.catalog.single() as conn:
            return conn.execute(statement).first() is not None

    def get(self, execution_id: str) -> ExecutionRow | None:
        with self.catalog.single() as conn:
            row = conn.execute(select(executions).where(executions.c.id == execution_id)).first()
        return execution_row(row._mapping) if row else None

    def ids_starting_with(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` execution ids that start with ``prefix``, in order."""
        query = (
            select(executions.c.id)
            .where(executions.c.id.startswith(prefix, autoescape=True))
            .order_by(executions.c.id)
            .limit(limit)
        )
        with self.catalog.single() as conn:
            return [row.id for row in conn.execute(query)]

    def list_executions(
        self, status: str | None = None, workflow: str | None = None, limit: int = 1000
    ) -> list[ExecutionRow]:
        query = select(executions).order_by(executions.c.created_at.desc()).limit(limit)
        if status:
            query = query.where(executions.c.status == status)
        if workflow:
            query = query.where(executions.c.workflow == workflow)
        with self.catalog.single() as conn:
            return [execution_row(row._mapping) for row in conn.execute(query)]

    def claim(self, execution_id: str, owner: str, now: datetime, lease: timedelta) -> bool:
        """Take the lease of a pending, failed, cancelled or abandoned execution and mark it
        running. False when it is finished or another worker holds a lease that has not
        expired on the catalog's clock."""
        with self.catalog.single() as conn:
            claimed = conn.execute(
                update(executions)
                .where(
                    executions.c.id == execution_id,
                    executions.c.status != SUCCEEDED,
                    or_(
                        executions.c.status != RUNNING,
                        executions.c.lease_expires_at < self.clock.now(),
                        executions.c.lease_owner == owner,
                    ),
                )
                .values(
                    status=RUNNING,
                    lease_owner=owner,
                    lease_expires_at=self.clock.later(lease),
                    runs=executions.c.runs + 1,
                    cancel_requested=False,
                    error=None,
                    started_at=func.coalesce(executions.c.started_at, now),
                    finished_at=None,
                    updated_at=now,
                )
            ).rowcount
        return bool(claimed)

    def renew(self, execution_id: str, owner: str, now: datetime, lease: timedelta) -> str | None:
        """Extend the lease; return 'cancel' if cancellation was asked, None if the lease is
        lost, else 'ok'."""
        with self.catalog.single() as conn:
            renewed = conn.execute(
                update(executions)
                .where(self._held(execution_id, owner))
                .values(lease_expires_at=self.clock.later(lease), updated_at=now)
                .returning(executions.c.cancel_requested)
            ).first()
        if renewed is None:
            return None
        return "cancel" if renewed[0] else "ok"

    def finish(
        self,
        execution_id: str,
        owner: str,
        status: str,
        now: datetime,
        output: bytes | None = None,
        error: str | None = None,
        rerun: tuple[int, ...] = (),
    ) -> bool:
        """End a held execution. ``rerun``: failed steps whose failure ended it, marked to run
        again on resume (the other failed steps were handled, and replay their failure)."""
        with self.catalog.transaction() as conn:
            if rerun:
                conn.execute(
                    update(steps)
                    .where(
                        steps.c.execution_id == execution_id,
                        steps.c.number.in_(rerun),
                        steps.c.status == FAILED,
                    )
                    .values(status=RERUN)
                )
            return bool(
                conn.execute(
                    update(executions)
                    .where(self._held(execution_id, owner))
                    .values(
                        status=status,
                        output=output,
                        error=error,
                        finished_at=now,
                        updated_at=now,
                        lease_owner=None,
                        lease_expires_at=None,
                        deduplication_id=None,  # the id may be enqueued again
                    )
                ).rowcount
            )

    def release(self, execution_id: str, owner: str, now: datetime) -> bool:
        """Hand a held execution back: to its queue, or pending for any worker's recover()."""
        with self.catalog.single() as conn:
            return bool(
                conn.execute(
                    update(executions)
                    .where(self._held(execution_id, owner))
                    .values(
                        status=case((executions.c.queue_name.is_(None), PENDING), else_=ENQUEUED),
                        lease_owner=None,
                        lease_expires_at=None,
                        updated_at=now,
                    )
                ).rowcount
            )

    def fork(self, source: ExecutionRow, new_id: str, from_step: int, now: datetime) -> None:
        """A new pending execution of ``source``'s workflow and inputs, with its finished steps
        before ``from_step`` copied (so they replay); any worker's recover() runs it."""
        columns = [column for column in steps.c if column.name != "execution_id"]
        with self.catalog.transaction() as conn:
            conn.execute(
                executions.insert().values(
                    id=new_id,
                    workflow=source.workflow,
                    status=PENDING,
                    inputs=source.inputs,
                    runs=0,
                    cancel_requested=False,
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(
                steps.insert().from_select(
                    ["execution_id", *(c.name for c in columns)],
                    select(literal(new_id, String()), *columns).where(
                        steps.c.execution_id == source.id,
                        steps.c.number < from_step,
                        steps.c.status != STARTED,  # a step begun, never ended, runs again
                    ),
                )
            )

    def finish_external(
        self,
        execution_id: str,
        external_workflow: str,
        status: str,
        now: datetime,
        output: bytes | None = None,
        error: str | None = None,
    ) -> bool:
        """End an open execution of ``external_workflow``; False when it is not open."""
        with self.catalog.single() as conn:
            return bool(
                conn.execute(
                    update(executions)
                    .where(
                        executions.c.id == execution_id,
                        executions.c.workflow == external_workflow,
                        executions.c.status.in_((PENDING, RUNNING)),
                    )
                    .values(
                        status=status, output=output, error=error, finished_at=now, updated_at=now
                    )
                ).rowcount
            )

    def request_cancel(
        self, execution_id: str, now: datetime, external_workflow: str
    ) -> str | None:
        """Cancel: an enqueued, pending or failed execution, or a running one of
        ``external_workflow``, at once; a running one of the engine's before its next step.
        Returns the status after the request, None if there is no such execution."""
        with self.catalog.transaction() as conn:
            row = conn.execute(
                select(executions.c.status, executions.c.workflow).where(
                    executions.c.id == execution_id
                )
            ).first()
            if row is None:
                return None
            if row[0] == RUNNING and row[1] != external_workflow:
                conn.execute(
                    update(executions)
                    .where(executions.c.id == execution_id)
                    .values(cancel_requested=True, updated_at=now)
                )
                return RUNNING
            if row[0] in (ENQUEUED, PENDING, FAILED, RUNNING):
                conn.execute(
                    update(executions)
                    .where(executions.c.id == execution_id)
                    .values(
                        status=CANCELLED, finished_at=now, updated_at=now, deduplication_id=None
                    )
                )
                return CANCELLED
            return str(row[0])

    def request_resume(self, execution_id: str, now: datetime) -> bool:
        """Mark a failed or cancelled execution pending, for a worker's recover() to resume."""
        with self.catalog.single() as conn:
            return bool(
                conn.execute(
                    update(executions)
                    .where(
                        executions.c.id == execution_id,
                        executions.c.status.in_((FAILED, CANCELLED)),
                    )
                    .values(status=PENDING, error=None, updated_at=now)
                ).rowcount
            )

    def abandoned(self, workflows: list[str]) -> list[str]:
        """Executions of these workflows to pick up: running ones whose worker's lease has
        expired on the catalog's clock, and pending ones (asked to resume)."""
        query = (
            select(executions.c.id)
            .where(
                or_(
                    and_(
                        executions.c.status == RUNNING,
                        executions.c.lease_expires_at < self.clock.now(),
                    ),
                    and_(executions.c.status == PENDING, executions.c.lease_owner.is_(None)),
                ),
                executions.c.workflow.in_(workflows),
            )
            .order_by(executions.c.created_at)
        )
        with self.catalog.single() as conn:
            return [row[0] for row in conn.execute(query)]

    @staticmethod
    def _expired(cutoff: datetime, external_workflow: str) -> Any:
        """Executions past retention: finished (succeeded, failed or cancelled) before
        ``cutoff``, and executions of ``external_workflow`` (written by processes outside the
        engine) left open with no checkpoint since ``cutoff``."""
        return or_(
            and_(executions.c.status.in_(TERMINAL), executions.c.finished_at < cutoff),
            and_(
                executions.c.workflow == external_workflow,
                executions.c.status.in_((PENDING, RUNNING)),
                executions.c.updated_at < cutoff,
            ),
        )

    def expired(self, cutoff: datetime, external_workflow: str) -> list[str]:
        """The ids of the executions past retention (see :meth:`_expired`)."""
        condition = self._expired(cutoff, external_workflow)
        with self.catalog.single() as conn:
            return [row[0] for row in conn.execute(select(executions.c.id).where(condition))]

    def delete_expired(self, cutoff: datetime, external_workflow: str) -> list[str]:
        """Delete the executions past retention and their steps; an execution of the engine's
        own that is running or pending is never removed by age. Returns the deleted ids."""
        condition = self._expired(cutoff, external_workflow)
        with self.catalog.transaction() as conn:
            ids = [row[0] for row in conn.execute(select(executions.c.id).where(condition))]
            if ids:
                conn.execute(delete(steps).where(steps.c.execution_id.in_(ids)))
                conn.execute(delete(executions).where(executions.c.id.in_(ids)))
        return ids

    def statistics(self) -> tuple[dict[str, int], dict[str, tuple[int, float]]]:
        """Executions by status, and per workflow the count and total seconds of its steps."""
        with self.catalog.single() as conn:
            by_status: dict[Any, Any] = dict(
                conn.execute(
                    select(executions.c.status, func.count()).group_by(executions.c.status)
                ).all()
            )
            steps_by_workflow = {
                row[0]: (int(row[1]), float(row[2] or 0.0))
                for row in conn.execute(
                    select(executions.c.workflow, func.count(), func.sum(steps.c.duration_seconds))
                    .join(steps, steps.c.execution_id == executions.c.id)
                    .group_by(executions.c.workflow)
                )
            }
        return {str(k): int(v) for k, v in by_status.items()}, steps_by_workflow

    def referenced_results(self) -> set[bytes]:
        """Every stored step result and output that is a blob reference (for blob cleanup)."""
        with self.catalog.transaction() as conn:
            results = conn.execute(
                select(steps.c.result).where(func.substr(steps.c.result, 1, 1) == b"b")
            )
            outputs = conn.execute(
                select(executions.c.output).where(func.substr(executions.c.output, 1, 1) == b"b")
            )
            inputs = conn.execute(
                select(executions.c.inputs).where(func.substr(executions.c.inputs, 1, 1) == b"b")
            )
            return {row[0] for rows in (results, outputs, inputs) for row in rows}

    @staticmethod
    def _held(execution_id: str, owner: str) -> Any:
        return and_(
            executions.c.id == execution_id,
            executions.c.status == RUNNING,
            executions.c.lease_owner == owner,
        )

    # -- steps ------------------------------------------------------------------------------

    def load_steps(self, execution_id: str) -> dict[int, StepRow]:
        with self.catalog.single() as conn:
            rows = conn.execute(
                select(steps).where(steps.c.execution_id == execution_id).order_by(steps.c.number)
            )
            return {row.number: _step(row._mapping) for row in rows}

    def record_step(self, execution_id: str, owner: str | None, step: StepRow) -> bool:
        """Write a step checkpoint, if ``owner`` still holds the lease (None: no lease, for
        external processes). A succeeded step is never overwritten; a started or failed one is.
        Returns False when nothing was written. One statement, built once: this is the
        per-step cost of every workflow."""
        values = {
            "execution_id": execution_id,
            "number": step.number,
            "name": step.name,
            "kind": step.kind,
            "status": step.status,
            "result": step.result,
            "error": step.error,
            "attempts": step.attempts,
            "started_at": step.started_at,
            "finished_at": step.finished_at,
            "duration_seconds": step.duration_seconds,
            "metadata": step.metadata,
            "owner": owner,
        }
        statement = self._record_any if owner is None else self._record_leased
        with self.catalog.single() as conn:
            return conn.execute(statement, values).first() is not None

    def _build_record_statements(self) -> None:
        columns = [column.name for column in steps.c]

        def upsert(source: Any) -> Any:
            statement = self._insert(steps).from_select(columns, source)
            return statement.on_conflict_do_update(
                index_elements=["execution_id", "number"],
                set_={name: statement.excluded[name] for name in columns if name != "number"},
                where=steps.c.status != SUCCEEDED,
            ).returning(steps.c.number)  # rowcount is not reliable for INSERTs

        # PostgreSQL needs the types of INSERT ... SELECT parameters spelled out; SQLite would
        # turn CAST(? AS DATETIME) into a number, and needs none.
        typed = self.catalog.engine.dialect.name == "postgresql"
        params = [
            (
                cast(bindparam(c.name, type_=c.type), c.type)
                if typed
                else bindparam(c.name, type_=c.type)
            ).label(c.name)
            for c in steps.c
        ]
        lease_held = exists().where(
            executions.c.id == bindparam("execution_id"),
            executions.c.status == RUNNING,
            executions.c.lease_owner == bindparam("owner", type_=String()),
        )
        self._record_leased = upsert(select(*params).where(lease_held))
        # "WHERE true" keeps SQLite from reading ON CONFLICT as a join constraint.
        self._record_any = upsert(select(*params).where(true()))

    def append_external(self, execution_id: str, step: StepRow, now: datetime) -> StepRow:
        """Record ``step`` (named ``step.name``) at the next number of an execution, numbered
        by the catalog under a lock on the execution's row, so concurrent writers queue rather
        than collide. If a step of that name exists, it is returned instead (and nothing is
        written): the caller compares states."""
        with self.catalog.transaction() as conn:
            conn.execute(
                select(executions.c.id).where(executions.c.id == execution_id).with_for_update()
            )
            existing = conn.execute(
                select(steps).where(steps.c.execution_id == execution_id, steps.c.name == step.name)
            ).first()
            if existing is not None:
                return _step(existing._mapping)
            current = conn.execute(
                select(func.max(steps.c.number)).where(steps.c.execution_id == execution_id)
            ).scalar()
            step.number = 0 if current is None else int(current) + 1
            values = {name: getattr(step, name) for name in StepRow.__dataclass_fields__}
            conn.execute(steps.insert().values(execution_id=execution_id, **values))
            conn.execute(
                update(executions).where(executions.c.id == execution_id).values(updated_at=now)
            )
            return step
