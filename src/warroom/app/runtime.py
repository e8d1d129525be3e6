"""What a running service adds to the services: its job runner, its scheduler and the scheduler
of its app's scheduled workflows, built once here for ``warroom serve`` (and the scheduler
alone for ``warroom scheduler``)."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

from warroom.jobs import Job, JobRunner
from warroom.scheduler import Scheduler
from warroom.scheduler.jobs import build_scheduler
from warroom.services import Services
from warroom.workflow.loading import load_engine
from warroom.workflow.scheduled import workflow_scheduler

__all__ = ["ServiceRuntime", "standalone_scheduler", "start_service"]


def _replica_owner() -> str:
    """A name for this process, unique across hosts and restarts: who holds a job or a slot."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class ServiceRuntime:
    """``jobs`` runs the long operations (a failed one is notified as ``<kind>_failed``);
    ``interrupted`` is how many jobs of replicas that stopped were marked failed at start;
    ``workflows`` runs the app's scheduled workflows (None without an app, or when it has
    none). Close it when the service stops."""

    jobs: JobRunner
    scheduler: Scheduler
    interrupted: int
    workflows: Scheduler | None = None

    def close(self) -> None:
        if self.workflows is not None:
            self.workflows.stop()
        self.scheduler.stop()
        self.jobs.close()


def start_service(services: Services) -> ServiceRuntime:
    """Start the job runner and, when WARROOM_SCHEDULER_ENABLED, the scheduler and the app's
    scheduled workflows, under one new replica name. ConfigurationError (nothing left
    running) for an invalid schedule, or a WARROOM_APP that cannot be loaded."""
    owner = _replica_owner()

    def job_failed(job: Job) -> None:
        message = (job.error or {}).get("message", "failed")
        summary = f"{job.kind} job {job.id}: {message}"
        services.notifier.notify(f"{job.kind}_failed", summary, job_id=job.id, kind=job.kind)

    jobs = JobRunner(services.catalog, owner, on_failure=job_failed)
    try:
        interrupted = jobs.fail_interrupted()
        runtime = ServiceRuntime(
            jobs, build_scheduler(services, owner), interrupted, _app_workflows(services)
        )
    except BaseException:
        jobs.close()
        raise
    if services.settings.scheduler_enabled:
        runtime.scheduler.start()
        if runtime.workflows is not None:
            runtime.workflows.start()
    return runtime


def _app_workflows(services: Services) -> Scheduler | None:
    """The scheduler of the scheduled workflows of the service's app (WARROOM_APP): the one
    every ``warroom worker`` of that app ticks, with its slot claims in the app's catalog, so
    workers and replicas together run each slot once."""
    if not services.settings.app:
        return None
    engine = load_engine(services.settings.app)
    return workflow_scheduler(engine)


def standalone_scheduler(services: Services) -> Scheduler:
    """The scheduler of a process that runs it alone (not started)."""
    return build_scheduler(services, _replica_owner())
