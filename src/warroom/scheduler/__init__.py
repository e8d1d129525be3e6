"""The scheduler: cron-triggered database backups, cleanups and restore tests.

Each firing has a deterministic key, (job, slot time), claimed in the catalog with an insert
that only one process can win: with several replicas, or after a restart, one slot runs exactly
once. At each tick the scheduler looks at each job's latest slot at or before now. If that slot
is no older than the catch-up window and has not been claimed, it runs. So a slot missed while
the service was down runs once on start-up, not once per missed slot.

While a slot runs, its process refreshes the slot's heartbeat at every tick. A running slot
whose heartbeat is older than ``stale_after`` belongs to a process that crashed or was killed:
any scheduler marks it failed and alerts, so status and metrics never show it running forever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from warroom.catalog import Catalog
from warroom.catalog.schema import schedule_runs
from warroom.errors import ConfigurationError, WarroomError

__all__ = ["ScheduledJob", "Scheduler", "last_runs", "parse_schedule"]

log = logging.getLogger("warroom.scheduler")
RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


def _now() -> datetime:
    return datetime.now(UTC)


def parse_schedule(name: str, expression: str, default_zone: str) -> tuple[str, ZoneInfo]:
    """Validate a cron expression, optionally prefixed ``CRON_TZ=Europe/Paris``; the error
    names the job, the expression and the reason."""
    text, zone_name = expression.strip(), default_zone
    if text.startswith(("CRON_TZ=", "TZ=")):
        prefix, _, text = text.partition(" ")
        zone_name = prefix.split("=", 1)[1]
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"schedule of {name!r}: unknown time zone {zone_name!r} in {expression!r}"
        ) from exc
    try:
        croniter(text).get_next(datetime)  # also refuses dates that never come (30 February)
    except (ValueError, KeyError) as exc:
        raise ConfigurationError(
            f"schedule of {name!r}: invalid cron expression {expression!r}: {exc}; "
            "use five fields, e.g. '0 3 * * *'"
        ) from exc
    return text, zone


@dataclass
class ScheduledJob:
    name: str
    expression: str
    action: Callable[[], dict[str, Any]]
    default_zone: str = "UTC"

    def __post_init__(self) -> None:
        self.cron, self.zone = parse_schedule(self.name, self.expression, self.default_zone)

    def latest_slot(self, now: datetime) -> datetime:
        """The latest firing time at or before ``now`` (UTC)."""
        local = now.astimezone(self.zone) + timedelta(seconds=1)
        return croniter(self.cron, local).get_prev(datetime).astimezone(UTC)

    def run(self, slot: datetime) -> dict[str, Any]:
        """Run the job for ``slot`` (which the caller has claimed); its result."""
        return self.action()

    def next_slot(self, now: datetime) -> datetime:
        return croniter(self.cron, now.astimezone(self.zone)).get_next(datetime).astimezone(UTC)


def last_runs(catalog: Catalog) -> dict[str, dict[str, Any]]:
    """Each job's most recent run: slot, status, times, error."""
    runs: dict[str, dict[str, Any]] = {}
    with catalog.single() as conn:
        for row in conn.execute(select(schedule_runs).order_by(schedule_runs.c.slot)):
            runs[row.job] = {
                "slot": row.slot.isoformat(),
                "status": row.status,
                "started_at": row.started_at.isoformat(),
                "finished_at": row.finished_at.isoformat() if row.finished_at else None,
                "duration_seconds": row.duration_seconds,
                "error": row.error,
                "result": row.result,
            }
    return runs


class Scheduler:
    """Claims and runs due slots. ``tick(now)`` does one round (tests drive it with their own
    clock); ``start()`` ticks every ``interval`` seconds in a thread. ``off`` names the jobs
    that are not scheduled and why, for :meth:`describe`."""

    def __init__(
        self,
        catalog: Catalog,
        jobs: list[ScheduledJob],
        owner: str,
        catch_up: timedelta,
        on_failure: Callable[[str, str], None] = lambda job, error: None,
        clock: Callable[[], datetime] = _now,
        interval: float = 15.0,
        off: dict[str, str] | None = None,
    ) -> None:
        self.catalog, self.jobs, self.owner = catalog, jobs, owner
        self.off = off or {}
        self.catch_up, self.on_failure, self.clock = catch_up, on_failure, clock
        self.interval = interval
        self.stale_after = timedelta(seconds=max(8 * interval, 120))
        self._insert = (
            postgresql.insert if catalog.engine.dialect.name == "postgresql" else sqlite.insert
        )
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="scheduled")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def claim(self, job: str, slot: datetime, now: datetime) -> bool:
        """Claim (job, slot) for this process; False when another already has it."""
        statement = (
            self._insert(schedule_runs)
            .values(job=job, slot=slot, status=RUNNING, owner=self.owner, started_at=now)
            .on_conflict_do_nothing(index_elements=["job", "slot"])
            .returning(schedule_runs.c.job)
        )
        with self.catalog.single() as conn:
            return conn.execute(statement).first() is not None

    def tick(self, now: datetime | None = None, wait: bool = False) -> list[str]:
        """Start every due, unclaimed slot; return the jobs started (``wait``: and finished)."""
        now = now or self.clock()
        self._keep_alive(now)
        started, futures = [], []
        for job in self.jobs:
            try:
                slot = job.latest_slot(now)
                if now - slot > self.catch_up or not self.claim(job.name, slot, now):
                    continue
            except Exception:  # noqa: BLE001 - one job's trouble must not stop the others
                log.exception("scheduler: cannot plan %s", job.name)
                continue
            started.append(job.name)
            futures.append(self._pool.submit(self._run, job, slot))
        if wait:
            for future in futures:
                future.result()
        return started

    def _keep_alive(self, now: datetime) -> None:
        """Refresh the heartbeat of the slots this process runs; fail (and alert on) the
        running slots of processes that stopped refreshing theirs."""
        runs = schedule_runs.c
        error = f"interrupted: the process running it stopped (no heartbeat for {self.stale_after})"
        with self.catalog.transaction() as conn:
            conn.execute(
                update(schedule_runs)
                .where(runs.owner == self.owner, runs.status == RUNNING)
                .values(heartbeat_at=now)
            )
            abandoned = conn.execute(
                update(schedule_runs)
                .where(
                    runs.status == RUNNING,
                    runs.owner != self.owner,
                    func.coalesce(runs.heartbeat_at, runs.started_at) < now - self.stale_after,
                )
                .values(status=FAILED, finished_at=now, error=error)
                .returning(runs.job, runs.owner)
            ).all()
        for job, owner in abandoned:
            log.warning("scheduled %s was left running by %s, which stopped: failed", job, owner)
            self.on_failure(job, error)

    def _run(self, job: ScheduledJob, slot: datetime) -> None:
        began = time.monotonic()
        try:
            result = job.run(slot)
        except WarroomError as exc:
            self._finish(job.name, slot, FAILED, began, error=exc.message)
            self.on_failure(job.name, exc.message)
        except Exception as exc:  # noqa: BLE001 - a scheduled job never dies silently
            message = f"{type(exc).__name__}: {exc}"
            log.exception("scheduled job %s failed", job.name)
            self._finish(job.name, slot, FAILED, began, error=message)
            self.on_failure(job.name, message)
        else:
            self._finish(job.name, slot, SUCCEEDED, began, result=result)

    def _finish(self, job: str, slot: datetime, status: str, began: float, **values: Any) -> None:
        with self.catalog.single() as conn:
            conn.execute(
                update(schedule_runs)
                .where(schedule_runs.c.job == job, schedule_runs.c.slot == slot)
                .values(
                    status=status,
                    finished_at=self.clock(),
                    duration_seconds=round(time.monotonic() - began, 3),
                    **values,
                )
            )

    def describe(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Each job with its schedule, next run and last run; then the jobs that are off,
        with ``off`` saying why (and no next run)."""
        now = now or self.clock()
        last = last_runs(self.catalog)
        return [
            {
                "job": job.name,
                "schedule": job.expression,
                "timezone": str(job.zone),
                "next_run": job.next_slot(now).isoformat(),
                "last_run": last.get(job.name),
                "off": None,
            }
            for job in self.jobs
        ] + [
            {
                "job": name,
                "schedule": None,
                "timezone": None,
                "next_run": None,
                "last_run": last.get(name),
                "off": reason,
            }
            for name, reason in self.off.items()
        ]

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.tick()
                except WarroomError as exc:
                    log.warning("scheduler tick failed: %s", exc.message)
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 1)
        self._pool.shutdown(wait=True)
