"""One database backup as a person inspects it (``GET /api/v1/checkpoints/database/{name}``
and the web UI's backup page): its manifest summary, parts with checksums and sizes, status
and verification history, where its copies are, and which database a restore over the
configured one would replace."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from warroom.errors import IntegrityError, NotFoundError, WarroomError
from warroom.services import Services
from warroom.sources import backup_brief, group_by_source

__all__ = ["backup_copies", "backup_details", "restore_target"]


def backup_copies(services: Services, name: str) -> dict[str, str] | None:
    """With replicas, per repository (primary first), whether backup ``name`` is there
    (BackupService.copies_of: sizes, no byte read; every copy ``missing`` when none has a
    readable manifest); None without replicas. ``warroom list``'s COPIES column."""
    copies = services.repository.storage.copies()
    if len(copies) < 2:
        return None
    try:
        return services.backups.copies_of(services.backups.manifest(name))
    except (NotFoundError, IntegrityError):
        return {copy.location: "missing" for copy in copies}


def backup_details(services: Services, name: str) -> dict[str, Any]:
    """The backup ``name`` (NotFoundError when it has no manifest). ``status`` is the catalog's
    status word, ``unindexed`` when the catalog does not know the backup; ``checks`` are its
    verification records in the repository, oldest first; ``repositories``, with replicas
    only, is :func:`backup_copies`."""
    manifest = services.backups.manifest(name)
    record = services.catalog.get_checkpoint("database", name)
    copies = backup_copies(services, name)
    return {
        **manifest.summary(),
        "status": record.status if record else "unindexed",
        "verified_at": record.verified_at.isoformat() if record and record.verified_at else None,
        "server_version": manifest.server_version,
        "tool_version": manifest.tool_version,
        "kind": manifest.kind,
        "part_details": [
            {
                "name": part.name,
                "role": part.role,
                "table": part.table,
                "plain_size": part.plain_size,
                "plain_sha256": part.plain_sha256,
                "stored_size": part.stored_size,
                "stored_sha256": part.stored_sha256,
            }
            for part in manifest.parts
        ],
        "checks": [
            {"result": check.result, "at": check.at.isoformat(), "detail": check.detail}
            for check in services.backups.checks(name)
        ],
        **({"repositories": copies} if copies is not None else {}),
    }


def restore_target(services: Services, now: datetime) -> dict[str, Any] | None:
    """What a restore over the configured database replaces, before it starts: ``database``
    (the name a person types to confirm, never a password), ``label``, and
    ``newest_safety_backup`` (a brief, or None), the safety backup a previous restore left.
    None when no usable DATABASE_URL is configured."""
    url = services.settings.database_url
    if not url:
        return None
    try:
        database = make_url(url).database
        configured = services.backups.configured_source()
    except (ArgumentError, WarroomError):  # status reports a DATABASE_URL that cannot be used
        return None
    if not database or configured is None:
        return None
    group = group_by_source(services.catalog.list_checkpoints("database"), configured, now)[0]
    safety = [record for record in group.backups if record.safety]
    return {
        "database": database.rsplit("/", 1)[-1],
        "label": configured.label,
        "newest_safety_backup": backup_brief(safety[-1] if safety else None, now),
    }
