"""The health of the checkpoint system, as ``warroom status`` and ``GET /api/v1/status`` show it.

Reported per source (see :mod:`warroom.sources`): newest intact backup, newest restore-tested,
age against ``WARROOM_STALE_AFTER_HOURS``, point-in-time window and WAL archiving. Unhealthy
means a person must act: no database is configured; the configured database has no intact
backup, or its newest is older than the limit; WAL archiving is failing; or the last scheduled
backup failed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from warroom.catalog.schema import jobs as jobs_table
from warroom.errors import WarroomError
from warroom.scheduler import last_runs
from warroom.services import Services
from warroom.sources import SourceBackups, backup_brief, group_by_source
from warroom.workflow.values import BLOB_PREFIX

__all__ = ["archiving_status", "system_status"]

BACKUP_JOB = "database-backup"
NO_DATABASE = "no database configured: set DATABASE_URL"


def _source_status(
    group: SourceBackups, now: datetime, limit_hours: float, window: dict[str, Any] | None
) -> dict[str, Any]:
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
    }


def system_status(services: Services, now: datetime) -> dict[str, Any]:
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
    sources = [
        _source_status(group, now, limit, window)
        for group in group_by_source(records, configured)
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
    archiving = archiving_status(services)
    if archiving and archiving.get("failing"):
        problems.append(
            f"WAL archiving is failing: {archiving['failed_count']} failures, the last for "
            f"{archiving['last_failed_wal']} at {archiving['last_failed_time']}"
        )
    scheduled = last_runs(services.catalog)
    last_backup = scheduled.get(BACKUP_JOB)
    if last_backup is not None and last_backup["status"] == "failed":
        problems.append(f"the last scheduled backup failed: {last_backup['error']}")
    with services.catalog.single() as conn:
        failed_jobs = (
            conn.execute(
                select(func.count()).select_from(jobs_table).where(jobs_table.c.status == "failed")
            ).scalar()
            or 0
        )
    blobs = sum(info.size for info in services.workflows.blob_storage().list(BLOB_PREFIX))
    return {
        "healthy": not problems,
        "problems": problems,
        "sources": sources,
        "storage": {
            "database_bytes": sum(r.size_stored or 0 for r in records),
            "workflow_blob_bytes": blobs,
            "free_bytes": services.backup_storage.free_bytes(),
        },
        "scheduled": scheduled,
        "failed_jobs": int(failed_jobs),
        "wal_archiving": archiving,
    }


def archiving_status(services: Services) -> dict[str, Any] | None:
    """PostgreSQL's archiver statistics, with ``failing`` when its last attempt failed."""
    url = services.settings.database_url
    if not url or not url.startswith(("postgresql:", "postgres:")):
        return None
    try:
        engine = services.backups.engine_for(url)
        stats = engine.archiving_status()  # type: ignore[attr-defined]
    except WarroomError as exc:
        return {"failing": None, "error": exc.message}
    if stats is None:
        return None
    last_ok, last_failed = stats["last_archived_time"], stats["last_failed_time"]
    failing = last_failed is not None and (last_ok is None or last_failed > last_ok)
    return {
        **{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in stats.items()},
        "failing": failing,
    }
