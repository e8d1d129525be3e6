"""The configured scheduled jobs, built over the services (the scheduler itself knows none)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from warroom.errors import NotFoundError
from warroom.scheduler import ScheduledJob, Scheduler
from warroom.services import Services
from warroom.status import BACKUP_JOB, system_status

__all__ = ["build_scheduler"]

STALENESS_SCHEDULE = "0 */6 * * *"


def _now() -> datetime:
    return datetime.now(UTC)


def _restore_test(services: Services) -> dict[str, Any]:
    """``warroom verify --restore-test`` of the newest backup."""
    records = [
        r
        for r in services.catalog.list_checkpoints("database")
        if r.details.get("kind") != "physical"
    ]
    if not records:
        raise NotFoundError("no logical database checkpoint to restore-test yet")
    newest = max(records, key=lambda record: record.created_at)
    return services.backups.verify(newest.name, restore_test=True).to_dict()


def build_scheduler(
    services: Services,
    owner: str,
    clock: Callable[[], datetime] = _now,
    interval: float = 15.0,
) -> Scheduler:
    """Backups (DATABASE_CHECKPOINT_SCHEDULE), cleanup (CLEANUP_SCHEDULE), restore tests
    (VERIFY_SCHEDULE) and a staleness check; an invalid expression is refused here, at start."""
    settings, zone = services.settings, services.settings.schedule_timezone

    def staleness() -> dict[str, Any]:
        status = system_status(services, clock())
        if not status["healthy"]:
            services.notifier.notify(
                "backups_stale", "; ".join(status["problems"]), problems=status["problems"]
            )
        return {"healthy": status["healthy"], "problems": status["problems"]}

    jobs = [ScheduledJob("cleanup", settings.cleanup_schedule, services.cleanup.run, zone)]
    if settings.database_url:
        jobs += [
            ScheduledJob(
                BACKUP_JOB,
                settings.database_checkpoint_schedule,
                lambda: services.backups.create().summary(),
                zone,
            ),
            ScheduledJob(
                "restore-test", settings.verify_schedule, lambda: _restore_test(services), zone
            ),
            ScheduledJob("staleness", STALENESS_SCHEDULE, staleness, zone),
        ]

    def on_failure(job: str, error: str) -> None:
        services.notifier.notify(
            "scheduled_job_failed", f"scheduled {job} failed: {error}", job=job, error=error
        )

    return Scheduler(
        services.catalog,
        jobs,
        owner,
        timedelta(seconds=settings.schedule_catch_up_seconds),
        on_failure,
        clock,
        interval,
    )
