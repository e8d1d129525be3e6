"""Long operations (backups, restores, verifications, cleanups) run as jobs.

A job is a catalog row: its kind, its parameters (never a secret), its status (queued, running,
succeeded, failed), its progress (``stage``, ``bytes``, ``stage_started_at``, ``at``: enough
for a rate) and its result or error. The service replica that accepts a
job runs it in a thread and beats its heartbeat. When a replica starts, every job whose
heartbeat stopped (its replica died or was restarted) is marked failed, with an error that says
so. Such a job can be retried: the retry is a new job with the same parameters. A job is never
lost silently, and never shown as running forever.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from warroom.catalog import Catalog
from warroom.catalog.schema import jobs
from warroom.database.backups import Progress
from warroom.errors import ConflictError, NotFoundError, WarroomError

__all__ = ["Job", "JobRunner", "failed_job_count"]

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
ACTIVE = (QUEUED, RUNNING)
HEARTBEAT = timedelta(seconds=5)
STALE_AFTER = timedelta(seconds=30)

JobWork = Callable[[Progress], dict[str, Any]]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    status: str
    params: dict[str, Any]
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    retry_of: str | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in (SUCCEEDED, FAILED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "params": self.params,
            "progress": self.progress,
            "result": self.result,
            "error": self.error,
            "retry_of": self.retry_of,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "retryable": self.status == FAILED,
        }


def failed_job_count(catalog: Catalog, kind: str | None = None) -> int:
    """How many jobs (of ``kind``, or of every kind) ended failed, retried or not."""
    query = select(func.count()).select_from(jobs).where(jobs.c.status == FAILED)
    if kind is not None:
        query = query.where(jobs.c.kind == kind)
    with catalog.single() as conn:
        return int(conn.execute(query).scalar() or 0)


def _job(row: Any) -> Job:
    return Job(**{key: row[key] for key in Job.__dataclass_fields__})


class JobRunner:
    """Creates, runs and reports jobs; ``workers`` of them at a time in this process."""

    def __init__(
        self,
        catalog: Catalog,
        owner: str,
        workers: int = 2,
        on_failure: Callable[[Job], None] = lambda job: None,
    ) -> None:
        self.catalog = catalog
        self.owner = owner
        self.on_failure = on_failure
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")
        self._done: dict[str, threading.Event] = {}
        self._mine: set[str] = set()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="job-heartbeat", daemon=True)
        self._beat.start()

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=False)

    # -- reading ----------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        with self.catalog.single() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFoundError(
                f"no job {job_id!r} in catalog {self.catalog.location}", job_id=job_id
            )
        return _job(row._mapping)

    def active(self, kind: str) -> list[Job]:
        with self.catalog.single() as conn:
            rows = conn.execute(select(jobs).where(jobs.c.kind == kind, jobs.c.status.in_(ACTIVE)))
            return [_job(row._mapping) for row in rows]

    def wait(self, job_id: str, timeout: float) -> Job:
        """The job once finished, or as it is after ``timeout`` seconds."""
        event = self._done.get(job_id)
        if event is not None:
            event.wait(timeout)
            return self.get(job_id)
        deadline = _now() + timedelta(seconds=timeout)
        job = self.get(job_id)
        while not job.finished and _now() < deadline:
            self._stop.wait(0.2)
            job = self.get(job_id)
        return job

    # -- running ----------------------------------------------------------------------------

    def submit(
        self,
        kind: str,
        params: dict[str, Any],
        work: JobWork,
        created_by: str | None = None,
        retry_of: str | None = None,
    ) -> Job:
        job_id = uuid.uuid4().hex
        now = _now()
        with self.catalog.single() as conn:
            conn.execute(
                jobs.insert().values(
                    id=job_id,
                    kind=kind,
                    status=QUEUED,
                    params=params,
                    owner=self.owner,
                    retry_of=retry_of,
                    created_by=created_by,
                    created_at=now,
                    heartbeat_at=now,
                )
            )
        self._done[job_id] = threading.Event()
        self._mine.add(job_id)  # from now on this process beats for it, queued or running
        self._pool.submit(self._run, job_id, work)
        return self.get(job_id)

    def _run(self, job_id: str, work: JobWork) -> None:
        """Run one job; whatever happens, its row ends succeeded or failed."""
        last = {"at": 0.0}
        current: dict[str, Any] = {"stage": None, "since": None}

        def report(total: int, stage: str, expected: int | None) -> None:
            now = _now()
            if stage != current["stage"]:
                current.update(stage=stage, since=now.isoformat())
            if now.timestamp() - last["at"] >= 1.0 or total == 0:
                last["at"] = now.timestamp()
                progress = {
                    "stage": stage,
                    "bytes": total,
                    "expected_bytes": expected,
                    "stage_started_at": current["since"],
                    "at": now.isoformat(),
                }
                with suppress(WarroomError):  # progress is best effort
                    self._set(job_id, progress=progress)

        final: dict[str, Any]
        try:
            self._set(job_id, status=RUNNING, started_at=_now())
            result = work(Progress(report, interval=1.0))
        except WarroomError as exc:
            final = {"status": FAILED, "error": exc.to_dict()}
        except Exception as exc:  # noqa: BLE001 - a job never dies silently
            final = {
                "status": FAILED,
                "error": {
                    "code": "failed",
                    "message": f"{type(exc).__name__}: {exc}",
                    "details": {},
                },
            }
        else:
            final = {"status": SUCCEEDED, "result": result}
        try:
            self._finish(job_id, final)
        finally:
            self._mine.discard(job_id)
            self._done.pop(job_id, threading.Event()).set()
        if final["status"] == FAILED:
            self.on_failure(self.get(job_id))

    def _finish(self, job_id: str, values: dict[str, Any], attempts: int = 10) -> None:
        """Record the outcome, retrying while the catalog is unreachable: a job that stays
        "running" would block every later backup or restore."""
        for attempt in range(attempts):
            try:
                self._set(job_id, finished_at=_now(), **values)
                return
            except WarroomError:
                if attempt == attempts - 1:
                    raise
                self._stop.wait(min(30.0, 0.5 * 2**attempt))

    def _set(self, job_id: str, **values: Any) -> None:
        with self.catalog.single() as conn:
            conn.execute(
                update(jobs).where(jobs.c.id == job_id).values(heartbeat_at=_now(), **values)
            )

    def _heartbeat(self) -> None:
        """Beat for the jobs this process is running (only those), and fail the jobs of
        replicas that stopped beating."""
        while not self._stop.wait(HEARTBEAT.total_seconds()):
            try:
                mine = list(self._mine)
                if mine:
                    with self.catalog.single() as conn:
                        conn.execute(
                            update(jobs).where(jobs.c.id.in_(mine)).values(heartbeat_at=_now())
                        )
                self.fail_interrupted()
            except WarroomError:
                continue  # the catalog is unreachable for now; try again next beat

    def fail_interrupted(self) -> int:
        """Mark failed every active job whose replica stopped beating; return how many."""
        now = _now()
        with self.catalog.single() as conn:
            return int(
                conn.execute(
                    update(jobs)
                    .where(
                        jobs.c.status.in_(ACTIVE),
                        jobs.c.owner != self.owner,
                        or_(
                            jobs.c.heartbeat_at.is_(None),
                            and_(jobs.c.heartbeat_at < now - STALE_AFTER),
                        ),
                    )
                    .values(
                        status=FAILED,
                        finished_at=now,
                        error={
                            "code": "interrupted",
                            "message": "the service running this job stopped before it finished; "
                            "retry it with POST /api/v1/jobs/{id}/retry",
                            "details": {},
                        },
                    )
                ).rowcount
            )

    def retry(self, job_id: str, work: JobWork, created_by: str | None) -> Job:
        """Run a failed job again, once: a second retry of the same job is refused (it could
        restore over a database a second time)."""
        job = self.get(job_id)
        if job.status != FAILED:
            raise ConflictError(
                f"job {job_id} is {job.status}; only failed jobs are retried", job_id=job_id
            )
        with self.catalog.single() as conn:
            retried = conn.execute(select(jobs.c.id).where(jobs.c.retry_of == job_id)).first()
        if retried is not None:
            raise ConflictError(
                f"job {job_id} was already retried as job {retried[0]}; retry that one if it "
                "failed too",
                job_id=job_id,
            )
        if self.active(job.kind):
            raise ConflictError(f"a {job.kind} job is already running; wait for it")
        return self.submit(job.kind, job.params, work, created_by=created_by, retry_of=job_id)
