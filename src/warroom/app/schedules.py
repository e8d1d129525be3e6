"""The scheduled jobs as ``warroom schedule list`` shows them (``GET /api/v1/schedules``, the web
UI's overview and admin screens): schedule, next run, last run and its outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from warroom.scheduler.jobs import build_scheduler
from warroom.services import Services

__all__ = ["ScheduleTable", "schedule_table"]


@dataclass(frozen=True)
class ScheduleTable:
    """Each configured job (``Scheduler.describe``), then the jobs that are off and why."""

    jobs: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"jobs": self.jobs}


def schedule_table(services: Services, now: datetime) -> ScheduleTable:
    """The schedule at ``now``. It describes the configuration: it neither starts nor claims
    anything."""
    return ScheduleTable(build_scheduler(services, owner="describe").describe(now))
