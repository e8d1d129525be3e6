"""The scheduled jobs as ``warroom schedule list`` shows them (``GET /api/v1/schedules``, the web
UI's overview and admin screens): schedule, next run, last run and its outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from warroom.scheduler.jobs import build_scheduler
from warroom.services import Services

__all__ = ["schedule_table"]


def schedule_table(services: Services, now: datetime) -> list[dict[str, Any]]:
    """Each configured job (``Scheduler.describe``), then the jobs that are off and why. It
    describes the configuration: it neither starts nor claims anything."""
    return build_scheduler(services, owner="describe").describe(now)
