"""The checkpoint list (``warroom list``, ``GET /api/v1/checkpoints/list``): every checkpoint,
oldest first, and the database backups grouped by source as ``pgbackrest info`` groups them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from warroom.app.backups import backup_copies
from warroom.database.verification import STATUSES
from warroom.errors import InputError, NotFoundError, WarroomError
from warroom.services import Services
from warroom.sources import backup_brief, group_by_source, source_id_of

__all__ = ["CHECKPOINT_TYPES", "STATUSES", "checkpoint_listing"]

CHECKPOINT_TYPES = ("workflow", "database", "deployment")


def checkpoint_listing(
    services: Services,
    now: datetime,
    type_: str | None = None,
    source: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """``{"checkpoints": [...], "sources": [...], "recoverable_window": ...}``. ``source``
    (an id or a label, as ``sources`` shows them; NotFoundError for one that has no backup)
    and ``status`` (a backup status word) keep only the database backups that match, and the
    sources that have any."""
    if type_ is not None and type_ not in CHECKPOINT_TYPES:
        raise InputError(f"unknown checkpoint type {type_!r}: use {', '.join(CHECKPOINT_TYPES)}")
    if status is not None and status not in STATUSES:
        raise InputError(f"unknown status {status!r}: use {', '.join(STATUSES)}")
    databases = bool(source or status) or type_ == "database"
    try:
        configured = services.backups.configured_source()
    except WarroomError:  # a bad DATABASE_URL does not hide the list; status reports it
        configured = None
    if databases and type_ not in (None, "database"):
        records = []  # the filters keep database backups only
    else:
        records = services.catalog.list_checkpoints("database" if databases else type_)
    groups = group_by_source(
        [r for r in records if r.type == "database" and status in (None, r.status)],
        configured,
        now,
    )
    if source is not None:
        groups = [g for g in groups if source in (g.id, g.label)]
        if not groups:
            raise NotFoundError(
                f"no backups of a source {source!r} in the catalog {services.catalog.location}: "
                "`warroom list --type database` shows the sources (by id or label)"
            )
    kept = {id(record) for group in groups for record in group.backups}
    rows = [
        record.to_dict() | {"source_id": source_id_of(record)}
        for record in records
        if record.type != "database" or id(record) in kept
    ]
    for row in rows:  # with replicas: where each backup is
        copies = backup_copies(services, row["name"]) if row["type"] == "database" else None
        if copies is not None:
            row["repositories"] = copies
    if type_ in (None, "workflow") and not databases:
        rows += [e.checkpoint_row() for e in services.workflows.list_executions()]
    rows.sort(key=lambda row: (row["created_at"], row["name"]))
    window = services.pitr.window() if type_ in (None, "database") else None
    return {
        "checkpoints": rows,
        "sources": [
            {
                "source": group.id,
                "label": group.label,
                "configured": group.configured,
                "backups": [record.name for record in group.backups],
                "newest_completed": backup_brief(group.newest_intact, now),
                "newest_restore_tested": backup_brief(group.newest_restore_tested, now),
                "pitr_window": group.pitr_window(window),
            }
            for group in groups
            if group.backups or group.configured and source is None and status is None
        ],
        "recoverable_window": window,
    }
