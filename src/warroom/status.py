"""The health of the checkpoint system, as ``warroom status`` and ``GET /api/v1/status`` show it.

Unhealthy means a person must act: the newest verified database backup is older than
``WARROOM_STALE_AFTER_HOURS`` (or there is none while a database is configured), or the last
scheduled backup failed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from warroom.catalog.schema import jobs as jobs_table
from warroom.errors import WarroomError
from warroom.retention import VERIFIED_STATUSES
from warroom.scheduler import last_runs
from warroom.services import Services
from warroom.workflow.values import BLOB_PREFIX

__all__ = ["archiving_status", "system_status"]

BACKUP_JOB = "database-backup"


def system_status(services: Services, now: datetime) -> dict[str, Any]:
    settings = services.settings
    records = services.catalog.list_checkpoints("database")
    verified = [r for r in records if r.status in VERIFIED_STATUSES]
    newest = max(verified, key=lambda r: r.created_at) if verified else None
    age_hours = (now - newest.created_at).total_seconds() / 3600 if newest else None
    stale = bool(settings.database_url) and (
        age_hours is None or age_hours > settings.stale_after_hours
    )
    scheduled = last_runs(services.catalog)
    with services.catalog.single() as conn:
        failed_jobs = (
            conn.execute(
                select(func.count()).select_from(jobs_table).where(jobs_table.c.status == "failed")
            ).scalar()
            or 0
        )
    last_backup = scheduled.get(BACKUP_JOB)
    blobs = sum(info.size for info in services.workflows.blob_storage().list(BLOB_PREFIX))
    problems = []
    if stale:
        problems.append(
            "no verified database backup"
            if newest is None
            else f"the newest verified backup, {newest.name}, is {age_hours:.1f} h old "
            f"(limit {settings.stale_after_hours:g} h)"
        )
    archiving = archiving_status(services)
    if archiving and archiving.get("failing"):
        problems.append(
            f"WAL archiving is failing: {archiving['failed_count']} failures, the last for "
            f"{archiving['last_failed_wal']} at {archiving['last_failed_time']}"
        )
    if last_backup is not None and last_backup["status"] == "failed":
        problems.append(f"the last scheduled backup failed: {last_backup['error']}")
    return {
        "healthy": not problems,
        "problems": problems,
        "storage": {
            "database_bytes": sum(r.size_stored or 0 for r in records),
            "workflow_blob_bytes": blobs,
            "free_bytes": services.backup_storage.free_bytes(),
        },
        "newest_verified_backup": {
            "name": newest.name,
            "created_at": newest.created_at.isoformat(),
            "age_hours": round(age_hours, 2) if age_hours is not None else None,
        }
        if newest
        else None,
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
