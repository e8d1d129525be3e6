"""The configured scheduled jobs, built over the services (the scheduler itself knows none)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from warroom.errors import NotFoundError
from warroom.scheduler import ScheduledJob, Scheduler
from warroom.services import Services
from warroom.sources import group_by_source
from warroom.status import BACKUP_JOB, NO_DATABASE, system_status

__all__ = ["build_scheduler"]

STALENESS_SCHEDULE = "0 */6 * * *"


def _now() -> datetime:
    return datetime.now(UTC)


def _restore_test(services: Services, now: datetime) -> dict[str, Any]:
    """``warroom verify --restore-test`` of the newest intact logical backup of the configured
    database (DATABASE_URL)."""
    configured = services.backups.configured_source()
    groups = group_by_source(services.catalog.list_checkpoints("database"), configured, now)
    newest = groups[0].newest_logical if groups and groups[0].configured else None
    if newest is None:
        raise NotFoundError(
            f"no intact logical backup of {configured.label if configured else 'DATABASE_URL'} "
            "to restore-test yet"
        )
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

    jobs = [
        ScheduledJob(
            "cleanup", settings.cleanup_schedule, lambda: dict(services.cleanup.run()), zone
        )
    ]
    off: dict[str, str] = {}
    if not settings.database_url:
        off = dict.fromkeys((BACKUP_JOB, "restore-test", "staleness"), NO_DATABASE)
    else:
        jobs += [
            ScheduledJob(
                BACKUP_JOB,
                settings.database_checkpoint_schedule,
                lambda: services.backups.create().summary(),
                zone,
            ),
            ScheduledJob(
                "restore-test",
                settings.verify_schedule,
                lambda: _restore_test(services, clock()),
                zone,
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
        off,
    )
