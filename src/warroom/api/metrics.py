"""``GET /metrics`` in the Prometheus text format.

Checkpoint, backup, scheduler and workflow figures are read from the catalog at each scrape, so
every replica reports the same numbers. Request counts and latencies are this replica's own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Receive, Scope, Send

from warroom.api.asgi import call_recording_status
from warroom.app.listing import STATUSES
from warroom.app.metrics import LIVE_STATES, CatalogFigures, catalog_figures
from warroom.services import Services

__all__ = ["RequestMetrics", "build_registry"]


def _worker_metrics(figures: CatalogFigures) -> Iterator[Metric]:
    """Workflow workers by state, their running executions, and queue depths."""
    found = figures.workers
    states = GaugeMetricFamily(
        "warroom_workflow_workers", "Workflow workers, by state.", labels=["state"]
    )
    for state in (*LIVE_STATES, "stopped", "lost"):
        states.add_metric([state], sum(1 for w in found if w.state == state))
    yield states
    active = GaugeMetricFamily(
        "warroom_workflow_worker_active_executions",
        "Executions each live worker runs now.",
        labels=["worker"],
    )
    for worker in found:
        if worker.state in LIVE_STATES:
            active.add_metric([worker.id], worker.active)
    yield active
    depth = GaugeMetricFamily(
        "warroom_workflow_queue_executions",
        "Queued executions, by queue and status.",
        labels=["queue", "status"],
    )
    for (queue, status), count in figures.queue_depths.items():
        depth.add_metric([queue, status], count)
    yield depth


class CatalogCollector(Collector):
    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        figures = catalog_figures(self.services, datetime.now(UTC))
        count = GaugeMetricFamily("warroom_checkpoints", "Checkpoints, by type.", labels=["type"])
        stored = GaugeMetricFamily(
            "warroom_checkpoint_stored_bytes", "Bytes stored, by checkpoint type.", labels=["type"]
        )
        databases = figures.databases
        for kind, total, size in (
            ("database", len(databases), sum(r.size_stored or 0 for r in databases)),
            ("deployment", figures.deployments, 0),
            ("workflow", sum(figures.executions.values()), figures.workflow_blob_bytes),
        ):
            count.add_metric([kind], total)
            stored.add_metric([kind], size)
        yield count
        yield stored

        yield from _source_metrics(figures)
        yield GaugeMetricFamily(
            "warroom_database_backup_failures",
            "Failed backup jobs, plus 1 if the last scheduled backup failed.",
            value=float(figures.backup_failures),
        )
        last_time = GaugeMetricFamily(
            "warroom_schedule_last_run_timestamp_seconds",
            "Slot time of each scheduled job's last run.",
            labels=["job"],
        )
        last_ok = GaugeMetricFamily(
            "warroom_schedule_last_run_success",
            "1 if the job's last run succeeded, 0 if not (or running).",
            labels=["job"],
        )
        for job, run in figures.scheduled.items():
            last_time.add_metric([job], datetime.fromisoformat(run["slot"]).timestamp())
            last_ok.add_metric([job], 1.0 if run["status"] == "succeeded" else 0.0)
        yield last_time
        yield last_ok
        executions = GaugeMetricFamily(
            "warroom_workflow_executions", "Workflow executions, by status.", labels=["status"]
        )
        for status in ("enqueued", "pending", "running", "succeeded", "failed", "cancelled"):
            executions.add_metric([status], figures.executions.get(status, 0))
        yield executions
        yield from _worker_metrics(figures)
        step_count = GaugeMetricFamily(
            "warroom_workflow_step_duration_seconds_count",
            "Recorded steps, by workflow.",
            labels=["workflow"],
        )
        step_sum = GaugeMetricFamily(
            "warroom_workflow_step_duration_seconds_sum",
            "Total seconds of the recorded steps, by workflow.",
            labels=["workflow"],
        )
        for workflow, (total, seconds) in figures.steps.items():
            step_count.add_metric([workflow], total)
            step_sum.add_metric([workflow], seconds)
        yield step_count
        yield step_sum
        archiving = figures.archiving
        if archiving is not None and archiving.get("failing") is not None:
            yield GaugeMetricFamily(
                "warroom_wal_archiving_failing",
                "1 when WAL archiving is failing: the last attempt failed, or a finished "
                "segment has waited too long to be archived; else 0.",
                value=1.0 if archiving["failing"] else 0.0,
            )
            yield GaugeMetricFamily(
                "warroom_wal_archive_failures",
                "Failed archive attempts since the server's statistics were reset.",
                value=float(archiving["failed_count"]),
            )
            if archiving["ready_count"] is not None:
                yield GaugeMetricFamily(
                    "warroom_wal_archive_ready_segments",
                    "Finished WAL segments waiting to be archived (.ready files).",
                    value=float(archiving["ready_count"]),
                )
                yield GaugeMetricFamily(
                    "warroom_wal_archive_oldest_ready_age_seconds",
                    "How long the oldest segment waiting to be archived has waited (0: none).",
                    value=float(archiving["oldest_ready_seconds"] or 0),
                )


def _source_metrics(figures: CatalogFigures) -> Iterator[Metric]:
    """The backup figures of each source, labelled ``source`` (its id, never a password)."""
    by_status = GaugeMetricFamily(
        "warroom_database_backups",
        "Database backups, by source and status (safety backups included).",
        labels=["source", "status"],
    )
    families = {
        "success": GaugeMetricFamily(
            "warroom_database_backup_last_success_timestamp_seconds",
            "When the newest intact backup of the source was taken.",
            labels=["source"],
        ),
        "duration": GaugeMetricFamily(
            "warroom_database_backup_last_duration_seconds",
            "How long the newest intact backup of the source took.",
            labels=["source"],
        ),
        "size": GaugeMetricFamily(
            "warroom_database_backup_last_size_bytes",
            "Stored size of the newest intact backup of the source.",
            labels=["source"],
        ),
        "tested": GaugeMetricFamily(
            "warroom_database_backup_last_restore_tested_timestamp_seconds",
            "When the newest restore-tested backup of the source was taken.",
            labels=["source"],
        ),
    }
    for group in figures.sources:
        for status in STATUSES:
            count = sum(record.status == status for record in group.backups)
            by_status.add_metric([group.id, status], count)
        newest, tested = group.newest_intact, group.newest_restore_tested
        if newest is not None:
            families["success"].add_metric([group.id], newest.created_at.timestamp())
            families["duration"].add_metric(
                [group.id], float(newest.details.get("duration_seconds") or 0)
            )
            families["size"].add_metric([group.id], float(newest.size_stored or 0))
        if tested is not None:
            families["tested"].add_metric([group.id], tested.created_at.timestamp())
    yield by_status
    yield from families.values()


class RequestMetrics:
    """Counts requests and measures their latency, by method, route template and status."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "warroom_api_requests",
            "API requests.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "warroom_api_request_duration_seconds",
            "API latency.",
            ["method", "route"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), {"code": 500}
        try:
            await call_recording_status(self.app, scope, receive, send, status)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.requests.labels(scope["method"], template, str(status["code"])).inc()
            self.latency.labels(scope["method"], template).observe(time.perf_counter() - started)


def build_registry(services: Services) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(CatalogCollector(services))
    return registry
