"""The health of the checkpoint system, as ``warroom status`` and ``GET /api/v1/status`` show it.

Reported per source (see :mod:`warroom.sources`): newest intact backup, newest restore-tested,
age against ``WARROOM_STALE_AFTER_HOURS``, point-in-time window and WAL archiving. Unhealthy
means a person must act: no database is configured; the configured database has no intact
backup, or its newest is older than the limit; WAL archiving is failing; or the last scheduled
backup failed.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, TypedDict

from warroom.errors import WarroomError
from warroom.jobs import failed_job_count
from warroom.repository.layout import BLOBS_PREFIX
from warroom.scheduler import last_runs
from warroom.services import Services
from warroom.sources import SourceBackups, backup_brief, group_by_source
from warroom.wal import segment_lsn_range

__all__ = [
    "SourceStatus",
    "StatusReport",
    "StorageUsage",
    "archiving_status",
    "system_status",
    "workflow_blob_bytes",
]

BACKUP_JOB = "database-backup"
NO_DATABASE = "no database configured: set DATABASE_URL"


class SourceStatus(TypedDict):
    """One source's backups; ``wal_archiving`` is the configured source's only (else None)."""

    source: str
    label: str
    configured: bool
    backups: int
    safety_backups: int
    newest_completed: dict[str, Any] | None
    newest_restore_tested: dict[str, Any] | None
    stale: bool
    stored_bytes: int
    pitr_window: dict[str, Any] | None
    wal_archiving: dict[str, Any] | None


class StorageUsage(TypedDict):
    database_bytes: int
    workflow_blob_bytes: int
    free_bytes: int | None


class StatusReport(TypedDict):
    """What ``warroom status --json`` and ``GET /api/v1/status`` return, key for key."""

    healthy: bool
    problems: list[str]
    sources: list[SourceStatus]
    storage: StorageUsage
    scheduled: dict[str, dict[str, Any]]
    failed_jobs: int
    wal_archiving: dict[str, Any] | None


def _source_status(
    group: SourceBackups,
    now: datetime,
    limit_hours: float,
    window: dict[str, Any] | None,
    archiving: dict[str, Any] | None,
) -> SourceStatus:
    newest = backup_brief(group.newest_intact, now)
    return {
        "source": group.id,
        "label": group.label,
        "configured": group.configured,
        "backups": sum(not r.safety for r in group.backups),
        "safety_backups": sum(r.safety for r in group.backups),
        "newest_completed": newest,
        "newest_restore_tested": backup_brief(group.newest_restore_tested, now),
        "stale": newest is None or newest["age_hours"] > limit_hours,
        "stored_bytes": sum(r.size_stored or 0 for r in group.backups),
        "pitr_window": group.pitr_window(window),
        "wal_archiving": archiving if group.configured else None,
    }


# A finished WAL segment waiting longer than this to be archived means archiving is broken.
ARCHIVE_LAG_LIMIT = 300.0


def system_status(services: Services, now: datetime) -> StatusReport:
    """The system's health at ``now`` (see the module's docstring for what is unhealthy)."""
    settings = services.settings
    problems: list[str] = []
    configured = None
    if not settings.database_url:
        problems.append(NO_DATABASE)
    else:
        try:
            configured = services.backups.configured_source()
        except WarroomError as exc:
            problems.append(f"DATABASE_URL cannot be used: {exc.message}")
    records = services.catalog.list_checkpoints("database")
    try:
        window = services.pitr.window()
    except WarroomError as exc:
        window, problems = None, [*problems, f"the point-in-time window is unknown: {exc.message}"]
    limit = settings.stale_after_hours
    archiving = archiving_status(services)  # the configured server's
    sources = [
        _source_status(group, now, limit, window, archiving)
        for group in group_by_source(records, configured, now)
    ]
    for source in sources:
        if not source["configured"] or not source["stale"]:
            continue
        newest = source["newest_completed"]
        problems.append(
            f"{source['label']} has no intact backup"
            if newest is None
            else f"{source['label']}: the newest intact backup, {newest['name']}, is "
            f"{newest['age_hours']:.1f} h old (limit {limit:g} h)"
        )
    if archiving and archiving.get("failing"):
        problems.append(archiving["problem"])
    scheduled = last_runs(services.catalog)
    last_backup = scheduled.get(BACKUP_JOB)
    if last_backup is not None and last_backup["status"] == "failed":
        problems.append(f"the last scheduled backup failed: {last_backup['error']}")
    return {
        "healthy": not problems,
        "problems": problems,
        "sources": sources,
        "storage": {
            "database_bytes": sum(r.size_stored or 0 for r in records),
            "workflow_blob_bytes": workflow_blob_bytes(services),
            "free_bytes": services.backup_storage.free_bytes(),
        },
        "scheduled": scheduled,
        "failed_jobs": failed_job_count(services.catalog),
        "wal_archiving": archiving,
    }


def workflow_blob_bytes(services: Services) -> int:
    """The bytes of the large workflow states kept beside the catalog."""
    return sum(info.size for info in services.workflows.blob_storage().list(BLOBS_PREFIX))


def archiving_status(services: Services) -> dict[str, Any] | None:
    """The server's archiving facts (DatabaseEngine.archiving_status), with ``failing`` and,
    when failing, the ``problem`` in words. Failing is judged by what cannot lie, not only by
    the archiver's failure count (an archive_command that cannot run leaves that at 0): the
    last attempt failed, or a finished segment has waited more than ARCHIVE_LAG_LIMIT seconds
    to be archived: the oldest ``.ready`` file in pg_wal/archive_status when the server shows
    them, else the time since the last archived segment while the current one is beyond the
    next (``segments_waiting``)."""
    url = services.settings.database_url
    if not url or not url.startswith(("postgresql:", "postgres:")):
        return None
    try:
        engine = services.backups.engine_for(url)
        stats = engine.archiving_status()
    except WarroomError as exc:
        return {"failing": None, "error": exc.message}
    if stats is None:
        return None
    last_ok, last_failed = stats["last_archived_time"], stats["last_failed_time"]
    waiting = _segments_waiting(stats)
    waited = stats["oldest_ready_seconds"]
    if stats["ready_count"] is None and waiting:
        waited = stats["last_archived_seconds"]
    problem = None
    if last_failed is not None and (last_ok is None or last_failed > last_ok):
        problem = (
            f"WAL archiving is failing: {stats['failed_count']} failures, the last for "
            f"{stats['last_failed_wal']} at {last_failed.isoformat()}"
        )
    elif waited is not None and waited > ARCHIVE_LAG_LIMIT:
        backlog = f"{stats['ready_count']} segments wait" if stats["ready_count"] else "WAL waits"
        problem = (
            f"WAL archiving is failing: {backlog} to be archived, the oldest for "
            f"{waited / 60:.0f} min; the last archived is {stats['last_archived_wal'] or 'none'} "
            f"and the server writes {stats['current_wal']}; archive_command does not work "
            "(see the server's log; warroom setup-pitr --apply tests it)"
        )
    report = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in stats.items()}
    return {
        **report,
        "segments_waiting": waiting,
        "failing": problem is not None,
        "problem": problem,
    }


def _segments_waiting(stats: dict[str, Any]) -> int | None:
    """Finished segments between the last archived one and the one being written."""
    current, archived = stats["current_wal"], (stats["last_archived_wal"] or "")[:24]
    if not current or not re.fullmatch(r"[0-9A-F]{24}", archived):
        return None  # nothing archived yet, or a timeline history file
    size = int(stats["segment_size"])
    gap = segment_lsn_range(current, size)[0] - segment_lsn_range(archived, size)[1]
    return max(0, gap // size)
