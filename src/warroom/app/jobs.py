"""The long operations the service runs as jobs (a backup, a restore, a verification, a
cleanup, a rollback), each started by one function here after the checks that refuse it up
front, and rebuilt from its stored parameters, so a failed job can be retried, even by another
replica; and a job's progress as a person watches it.

Progress: stage, bytes, rate, and where the stage's total is known, the percentage and the
time left.

A job reports ``{"stage", "bytes", "stage_started_at", "at"}`` (:class:`warroom.jobs.JobRunner`).
The total of a stage is known when it reads a backup whose manifest gives its sizes: checking
the stored bytes reads ``size_stored``; verifying, a restore test and a restore read the
decoded bytes, ``size_original``. Other stages (a backup, the safety backup before a restore)
have no known total: they show bytes and rate only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from warroom.database.backups import Progress, check_verify_request
from warroom.errors import ConfigurationError, ConflictError, WarroomError
from warroom.jobs import Job, JobRunner, JobWork
from warroom.services import Services

__all__ = [
    "JobProgress",
    "job_progress",
    "retry_job",
    "start_backup",
    "start_cleanup",
    "start_restore",
    "start_rollback",
    "start_verify",
]


def _backup(services: Services, params: dict[str, Any]) -> JobWork:
    def work(progress: Progress) -> dict[str, Any]:
        manifest = services.backups.create(name=params["checkpoint_name"], progress=progress)
        return manifest.summary()

    return work


def _restore(services: Services, params: dict[str, Any]) -> JobWork:
    target_url = services.settings.database_url if params["target"] else None

    def work(progress: Progress) -> dict[str, Any]:
        return services.backups.restore(
            params["checkpoint_name"],
            new_db=params["new_db"],
            target_url=target_url,
            confirm=target_url is not None,
            jobs=params["jobs"],
            progress=progress,
        ).to_dict()

    return work


def _verify(services: Services, params: dict[str, Any]) -> JobWork:
    def work(progress: Progress) -> dict[str, Any]:
        if params.get("all_copies"):  # absent from the jobs of earlier releases
            copies = services.backups.verify_copies(params["name"], progress=progress)
            failure = copies.failure()
            if failure is not None:
                raise failure
            return copies.to_dict()
        return services.backups.verify(
            params["name"], restore_test=params["restore_test"], progress=progress
        ).to_dict()

    return work


def _cleanup(services: Services, params: dict[str, Any]) -> JobWork:
    def work(progress: Progress) -> dict[str, Any]:
        return dict(services.cleanup.run(days=params["days"], dry_run=params["dry_run"]))

    return work


def _rollback(services: Services, params: dict[str, Any]) -> JobWork:
    def work(progress: Progress) -> dict[str, Any]:
        return services.deployments.rollback(params["to_version"]).to_dict()

    return work


WORK: dict[str, Callable[[Services, dict[str, Any]], JobWork]] = {
    "backup": _backup,
    "restore": _restore,
    "verify": _verify,
    "cleanup": _cleanup,
    "rollback": _rollback,
}


def _submit(
    services: Services, runner: JobRunner, kind: str, params: dict[str, Any], who: str | None
) -> Job:
    return runner.submit(kind, params, WORK[kind](services, params), created_by=who)


def start_backup(services: Services, runner: JobRunner, *, name: str | None, who: str) -> Job:
    """Back up DATABASE_URL as ``name`` (default ``db-<time>``). ConfigurationError without a
    DATABASE_URL; ConflictError when the name is taken or a backup is running."""
    if not services.settings.database_url:
        raise ConfigurationError("the service has no DATABASE_URL configured to back up")
    if name and services.backups.exists(name):
        raise ConflictError(f"a database checkpoint named {name!r} already exists", name=name)
    if runner.active("backup"):
        raise ConflictError("a database backup is already running; wait for its job")
    return _submit(services, runner, "backup", {"checkpoint_name": name}, who)


def start_restore(
    services: Services,
    runner: JobRunner,
    *,
    name: str,
    new_db: str | None,
    jobs: int | None,
    who: str,
) -> Job:
    """Restore ``name`` into the new database ``new_db`` on the configured server, or with
    none over DATABASE_URL after a safety backup of it. NotFoundError for an unknown backup
    (now rather than in the job), ConfigurationError without a DATABASE_URL, ConflictError
    while a restore runs."""
    services.backups.manifest(name)
    if not services.settings.database_url:
        raise ConfigurationError(
            "no database is configured to restore into: set DATABASE_URL for the service"
        )
    if runner.active("restore"):
        raise ConflictError("a restore is already running; wait for its job")
    params = {
        "checkpoint_name": name,
        "new_db": new_db,
        "target": None if new_db else "configured",
        "jobs": jobs,
    }
    return _submit(services, runner, "restore", params, who)


def start_verify(
    services: Services,
    runner: JobRunner,
    *,
    name: str,
    restore_test: bool,
    all_copies: bool = False,
    who: str,
) -> Job:
    """Check ``name``'s checksums (with ``restore_test``, restore it into a scratch database
    and compare; with ``all_copies``, check the copy in every repository on its own: the job
    fails unless every copy is intact, see :meth:`CopiesReport.failure`). InputError for both
    at once, NotFoundError for an unknown backup."""
    check_verify_request(restore_test=restore_test, all_copies=all_copies)
    services.backups.manifest(name)
    params = {"name": name, "restore_test": restore_test, "all_copies": all_copies}
    return _submit(services, runner, "verify", params, who)


def start_cleanup(
    services: Services, runner: JobRunner, *, days: int | None, dry_run: bool, who: str
) -> Job:
    """Apply the retention policy (``days``, default CHECKPOINT_RETENTION_DAYS); the job's
    result is the plan and what was removed."""
    return _submit(services, runner, "cleanup", {"days": days, "dry_run": dry_run}, who)


def start_rollback(
    services: Services, runner: JobRunner, *, to_version: str | None, who: str
) -> Job:
    """Roll back to ``to_version`` (default the version before the current one).
    ConflictError while a rollback runs."""
    if runner.active("rollback"):
        raise ConflictError("a rollback is already running; wait for its job")
    return _submit(services, runner, "rollback", {"to_version": to_version}, who)


def retry_job(services: Services, runner: JobRunner, job_id: str, *, who: str) -> Job:
    """Run the failed job ``job_id`` again with its parameters (:meth:`JobRunner.retry`)."""
    job = runner.get(job_id)
    return runner.retry(job_id, WORK[job.kind](services, job.params), created_by=who)


STORED_STAGES = ("checking the stored bytes of ", "checking ")
DECODED_STAGES = ("verifying ", "restore test of ", "restoring ")


@dataclass(frozen=True)
class JobProgress:
    stage: str
    bytes: int
    total_bytes: int | None
    bytes_per_second: float | None
    percent: float | None
    eta_seconds: float | None


def _stage_total(services: Services, job: Job, stage: str) -> int | None:
    name = job.params.get("name") or job.params.get("checkpoint_name")
    if not name or job.kind not in ("verify", "restore"):
        return None
    stored = stage.startswith(STORED_STAGES)
    if not stored and not stage.startswith(DECODED_STAGES):
        return None
    try:
        manifest = services.backups.manifest(str(name))
    except WarroomError:  # deleted meanwhile: no total, the bytes still show
        return None
    return manifest.size_stored if stored else manifest.size_original


def job_progress(services: Services, job: Job) -> JobProgress | None:
    """The progress of a running job; None before its first report or once it finished."""
    if job.finished or not job.progress:
        return None
    stage, done = str(job.progress.get("stage", "")), int(job.progress.get("bytes", 0))
    total = _stage_total(services, job, stage)
    rate = None
    began, at = job.progress.get("stage_started_at"), job.progress.get("at")
    if began and at:
        elapsed = (datetime.fromisoformat(at) - datetime.fromisoformat(began)).total_seconds()
        rate = done / elapsed if elapsed > 0 else None
    percent = min(100.0, 100.0 * done / total) if total else None
    eta = (total - done) / rate if total and rate and done <= total else None
    return JobProgress(stage, done, total, rate, percent, eta)
