"""A job's progress as a person watches it: stage, bytes, rate, and where the stage's total is
known, the percentage and the time left.

A job reports ``{"stage", "bytes", "stage_started_at", "at"}`` (:class:`warroom.jobs.JobRunner`).
The total of a stage is known when it reads a backup whose manifest gives its sizes: checking
the stored bytes reads ``size_stored``; verifying, a restore test and a restore read the
decoded bytes, ``size_original``. Other stages (a backup, the safety backup before a restore)
have no known total: they show bytes and rate only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from warroom.errors import WarroomError
from warroom.jobs import Job
from warroom.services import Services

__all__ = ["JobProgress", "job_progress"]

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
