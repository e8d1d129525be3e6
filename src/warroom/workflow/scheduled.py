"""Scheduled workflows: ``@engine.scheduled(cron)`` runs once per slot across all workers.

Each worker ticks a :class:`~warroom.scheduler.Scheduler` over the engine's scheduled
workflows. A slot is claimed under the key (``workflow:<name>``, slot time) that every
scheduler of the catalog shares, and the claimer runs the workflow with the slot's time as the
execution ``<name>:<slot>``: two workers, a restart or a service replica never run one slot
twice, and a slot missed while every worker was down runs once within the catch-up window.
``warroom serve`` with an app (WARROOM_APP) ticks the same scheduler over the same claims.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from warroom.scheduler import ScheduledJob, Scheduler

if TYPE_CHECKING:
    from warroom.workflow.engine import AutomationEngine

__all__ = ["workflow_scheduler"]


class _WorkflowJob(ScheduledJob):
    """A scheduled workflow as a job of the scheduler."""

    def __init__(self, engine: AutomationEngine, workflow: str, cron: str) -> None:
        self.engine, self.workflow = engine, workflow
        super().__init__(f"workflow:{workflow}", cron, dict)

    def run(self, slot: datetime) -> dict[str, Any]:
        execution_id = f"{self.workflow}:{slot:%Y%m%dT%H%M%SZ}"
        self.engine.execute_workflow(self.workflow, slot, execution_id=execution_id)
        execution = self.engine.get_execution(execution_id)
        return {"execution_id": execution_id, "status": execution.status}


def workflow_scheduler(engine: AutomationEngine) -> Scheduler | None:
    """The scheduler of ``engine``'s scheduled workflows (on its catalog and clock, under its
    worker id), None when it has none."""
    jobs: list[ScheduledJob] = [
        _WorkflowJob(engine, workflow, cron) for workflow, cron in engine.schedules.items()
    ]
    if not jobs:
        return None
    return Scheduler(
        engine.catalog, jobs, engine.worker_id, engine.schedule_catch_up, clock=engine._clock
    )
