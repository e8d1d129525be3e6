"""The kinds of job the API starts, each rebuilt from its stored parameters (so a failed job
can be retried, even by another replica)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request

from warroom.database.backups import Progress
from warroom.jobs import Job, JobRunner, JobWork
from warroom.services import Services

__all__ = ["retry_job", "submit_job"]


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
        return services.backups.verify(
            params["name"], restore_test=params["restore_test"], progress=progress
        ).to_dict()

    return work


def _cleanup(services: Services, params: dict[str, Any]) -> JobWork:
    def work(progress: Progress) -> dict[str, Any]:
        return services.cleanup.run(days=params["days"], dry_run=params["dry_run"])

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


def _parts(request: Request) -> tuple[Services, JobRunner]:
    return request.app.state.services, request.app.state.jobs


def submit_job(request: Request, kind: str, params: dict[str, Any], who: str) -> Job:
    services, runner = _parts(request)
    return runner.submit(kind, params, WORK[kind](services, params), created_by=who)


def retry_job(request: Request, job_id: str, who: str) -> Job:
    services, runner = _parts(request)
    job = runner.get(job_id)
    return runner.retry(job_id, WORK[job.kind](services, job.params), created_by=who)
