"""Workers: processes that run queued executions (``warroom worker --app module:engine``).

A worker loops: it takes over the executions of dead workers (expired leases, on the catalog's
clock) and pending ones (asked to resume, forked), claims executions from its queues within
its own ``concurrency`` and each queue's limits, ticks the engine's scheduled workflows, and
records its state (``warroom workflow workers``, ``/metrics``). It wakes as soon as one of its
executions ends, and, on PostgreSQL, as soon as any process enqueues, forks or hands back an
execution (:mod:`warroom.workflow.wakeups`), so a queue never waits for a poll.

:meth:`Worker.stop` (the CLI calls it on SIGTERM or SIGINT) drains: the worker claims nothing
more and lets the executions it holds run on, to finish, for up to ``drain_timeout`` seconds
(state ``draining``). Then each one still running stops before its next step and goes back to
its queue (or becomes pending) for another worker, its finished steps recorded (state
``handing-back``); a step that is running finishes first, for up to ``grace`` seconds. After
that the worker leaves, and what it still holds is taken over when the lease expires, as after
a crash.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from warroom.catalog import Catalog
from warroom.catalog.schema import workflow_workers as workers
from warroom.errors import InputError, WarroomError
from warroom.workflow.engine import AutomationEngine, _Plan
from warroom.workflow.queues import Queue
from warroom.workflow.scheduled import workflow_scheduler
from warroom.workflow.store import SqlClock

__all__ = ["Worker", "WorkerInfo", "list_workers"]

log = logging.getLogger("warroom.worker")
RUNNING, DRAINING, HANDING_BACK, STOPPED = "running", "draining", "handing-back", "stopped"
LIVE_STATES = (RUNNING, DRAINING, HANDING_BACK)
HOUSEKEEPING_SECONDS = 1.0  # how often a busy worker ticks the schedules and records itself


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    state: str  # running, draining, handing-back, stopped; "lost": heartbeat older than a lease
    active: int
    completed: int
    started_at: datetime
    heartbeat_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
        }


def list_workers(catalog: Catalog, lost_after: float) -> list[WorkerInfo]:
    """Every worker that recorded itself, newest first; a running one whose heartbeat is older
    than ``lost_after`` seconds on the catalog's clock is ``lost``."""
    clock = SqlClock.for_dialect(catalog.engine.dialect.name)
    w = workers.c
    fresh = (w.heartbeat_at >= clock.later(timedelta(seconds=-lost_after))).label("fresh")
    with catalog.single() as conn:
        rows = conn.execute(select(workers, fresh).order_by(w.started_at.desc())).all()
    found = []
    for row in rows:
        values = {name: row._mapping[name] for name in WorkerInfo.__dataclass_fields__}
        if values["state"] in LIVE_STATES and not row.fresh:
            values["state"] = "lost"
        found.append(WorkerInfo(**values))
    return found


class Worker:
    """Runs an engine's queued executions; see the module docstring. ``queues``: the names of
    the engine's queues to work (default: all). ``run()`` until :meth:`stop`;
    :meth:`run_until_idle` for tests and scripts."""

    def __init__(
        self,
        engine: AutomationEngine,
        queues: list[str] | None = None,
        concurrency: int = 8,
        grace: float = 30.0,
        drain_timeout: float = 30.0,
    ) -> None:
        if concurrency < 1:
            raise InputError("worker: concurrency must be 1 or more")
        if grace < 0 or drain_timeout < 0:
            raise InputError("worker: grace and drain_timeout must be 0 seconds or more")
        unknown = sorted(set(queues or ()) - set(engine.queues))
        if unknown:
            raise InputError(
                f"worker: unknown queue(s) {', '.join(unknown)} (declared: "
                f"{', '.join(sorted(engine.queues)) or 'none'})"
            )
        self.engine, self.concurrency = engine, concurrency
        self.grace, self.drain_timeout = grace, drain_timeout
        self.queues: list[Queue] = [
            q for name, q in engine.queues.items() if not queues or name in queues
        ]
        self.completed = 0
        self.state = RUNNING
        self._active: dict[str, str | None] = {}  # execution id -> its queue
        self._futures: set[Future[Any]] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="warroom-worker")
        self._housekeeping_due = 0.0
        self._scheduler = workflow_scheduler(engine)

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """Work until :meth:`stop` is called, then drain (see the module docstring)."""
        self._record()
        wakeups = self.engine.wakeups
        try:
            while not self._stopping.is_set():
                token = wakeups.token()  # before looking: a wake after it cuts the wait
                if not self.step():
                    wakeups.wait(token, self.engine.poll_interval)
        finally:
            self._drain()

    def run_until_idle(self) -> None:
        """Work until nothing is left to claim and nothing runs."""
        self._record()
        wakeups = self.engine.wakeups
        try:
            while True:
                token = wakeups.token()
                if not (self.step() or self._futures):
                    break
                wakeups.wait(token, self.engine.poll_interval)
        finally:
            self._drain()

    def stop(self) -> None:
        """Ask :meth:`run` to drain and return (safe from a signal handler)."""
        self._stopping.set()
        self.engine.wakeups.wake()

    def step(self) -> bool:
        """One round: schedules, takeovers and its record (at most every
        HOUSEKEEPING_SECONDS), then claims. True when it started something and has room for
        more."""
        started = False
        if time.monotonic() >= self._housekeeping_due:
            self._housekeeping_due = time.monotonic() + HOUSEKEEPING_SECONDS
            if self._scheduler is not None:
                try:
                    self._scheduler.tick()
                except WarroomError as exc:
                    log.warning("scheduled workflows: tick failed: %s", exc.message)
            for plan in itertools.islice(self.engine._abandoned_plans(), self._room(None)):
                self._submit(plan, None)
                started = True
            self._record()
        for queue in self.queues:
            room = self._room(queue)
            if room > 0:
                for plan in self.engine._claim_queued(queue, room):
                    self._submit(plan, queue.name)
                    started = True
        return started and self._room(None) > 0

    def _room(self, queue: Queue | None) -> int:
        """How many more executions this worker takes now (of ``queue``, if given)."""
        with self._lock:
            room = self.concurrency - len(self._active)
            if queue is not None and queue.worker_concurrency is not None:
                mine = sum(1 for name in self._active.values() if name == queue.name)
                room = min(room, queue.worker_concurrency - mine)
        return room

    def _submit(self, plan: _Plan, queue: str | None) -> None:
        with self._lock:
            self._active[plan.execution_id] = queue
        future = self._pool.submit(self.engine._run_plan, plan)
        self._futures.add(future)

        def done(_: Future[Any]) -> None:
            with self._lock:
                self._active.pop(plan.execution_id, None)
                self.completed += 1
            self._futures.discard(future)
            self.engine.wakeups.wake()

        future.add_done_callback(done)

    def _drain(self) -> None:
        self.state = DRAINING
        self._wait_for_runs(self.drain_timeout)
        if not self.drained:
            self.state = HANDING_BACK
            self.engine._hand_back()
            self._wait_for_runs(self.grace)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._scheduler is not None:
            self._scheduler.stop()
        self.state = STOPPED if self.drained else self.state
        self._record()

    def _wait_for_runs(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the executions this worker runs (queued, taken over or
        scheduled) to end, recording its state (and heartbeat) meanwhile."""
        deadline, wakeups = time.monotonic() + seconds, self.engine.wakeups
        while True:
            token = wakeups.token()  # each execution's end wakes it
            self._record()
            left = deadline - time.monotonic()
            if self.drained or left <= 0:
                return
            wakeups.wait(token, min(left, HOUSEKEEPING_SECONDS))

    @property
    def drained(self) -> bool:
        """Nothing runs here any more."""
        return not self._futures and not self.engine._running

    # -- its record in the catalog ----------------------------------------------------------

    def _record(self) -> None:
        """Upsert this worker's row with its state, heartbeat on the catalog's clock."""
        engine = self.engine
        clock = SqlClock.for_dialect(engine.catalog.engine.dialect.name)
        values = {
            "state": self.state,
            "active": len(self._active),
            "completed": self.completed,
            "heartbeat_at": clock.now(),
        }
        try:
            with engine.catalog.transaction() as conn:
                changed = conn.execute(
                    update(workers).where(workers.c.id == engine.worker_id).values(**values)
                ).rowcount
                if not changed:
                    conn.execute(
                        workers.insert().values(
                            id=engine.worker_id,
                            host=socket.gethostname(),
                            pid=os.getpid(),
                            queues=[q.name for q in self.queues],
                            concurrency=self.concurrency,
                            started_at=clock.now(),
                            **values,
                        )
                    )
        except WarroomError as exc:
            log.warning("worker: cannot record its state: %s", exc.message)
