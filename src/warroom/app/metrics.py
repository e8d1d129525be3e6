"""The figures ``GET /metrics`` reports from the catalog and the repository, read at each
scrape so every replica reports the same numbers; :mod:`warroom.api.metrics` only turns them
into Prometheus families."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from warroom.catalog import CheckpointRecord
from warroom.errors import WarroomError
from warroom.jobs import failed_job_count
from warroom.scheduler import last_runs
from warroom.services import Services
from warroom.sources import SourceBackups, group_by_source
from warroom.status import BACKUP_JOB, archiving_status, workflow_blob_bytes
from warroom.workflow.worker import LIVE_STATES, WorkerInfo, list_workers

__all__ = ["LIVE_STATES", "CatalogFigures", "catalog_figures"]


@dataclass(frozen=True)
class CatalogFigures:
    """``sources``: the database backups by source. ``backup_failures``: failed backup jobs,
    plus 1 when the last scheduled backup failed. ``steps``: per workflow, the recorded steps
    and their total seconds. ``archiving``: :func:`warroom.status.archiving_status`.
    ``workers``: the workflow workers; ``queue_depths``: executions by (queue, status)."""

    databases: list[CheckpointRecord]
    deployments: int
    sources: list[SourceBackups]
    backup_failures: int
    scheduled: dict[str, dict[str, Any]]
    executions: dict[str, int]
    steps: dict[str, tuple[int, float]]
    workflow_blob_bytes: int
    archiving: dict[str, Any] | None
    workers: list[WorkerInfo]
    queue_depths: dict[tuple[str, str], int]


def catalog_figures(services: Services, now: datetime) -> CatalogFigures:
    databases = services.catalog.list_checkpoints("database")
    try:
        configured = services.backups.configured_source()
    except WarroomError:  # a bad DATABASE_URL is status's to report; the figures go on
        configured = None
    scheduled = last_runs(services.catalog)
    failed_scheduled = (scheduled.get(BACKUP_JOB) or {}).get("status") == "failed"
    executions, steps = services.workflows.statistics()
    return CatalogFigures(
        databases=databases,
        deployments=len(services.catalog.list_checkpoints("deployment")),
        sources=group_by_source(databases, configured, now),
        backup_failures=failed_job_count(services.catalog, kind="backup") + failed_scheduled,
        scheduled=scheduled,
        executions=executions,
        steps=steps,
        workflow_blob_bytes=workflow_blob_bytes(services),
        archiving=archiving_status(services),
        workers=list_workers(services.catalog, services.workflows.lease.total_seconds()),
        queue_depths=services.workflows.queue_store.depths(),
    )
