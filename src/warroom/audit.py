"""The audit log: every mutating API call, who made it, when, and its result (the API's
middleware, :mod:`warroom.api.auditing`, decides what is written)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update

from warroom.catalog import Catalog
from warroom.catalog.schema import audit_log

__all__ = ["prune_audit", "read_audit", "update_audit_details", "write_audit"]


def write_audit(
    catalog: Catalog,
    *,
    actor: str,
    role: str | None,
    method: str,
    path: str,
    status_code: int,
    details: dict[str, Any] | None = None,
) -> int:
    """Append an entry; returns its id."""
    with catalog.single() as conn:
        entry_id: int = conn.execute(
            audit_log.insert()
            .values(
                at=datetime.now(UTC),
                actor=actor,
                role=role,
                method=method,
                path=path[:500],
                status_code=status_code,
                outcome="success" if status_code < 400 else "failure",
                details=details or {},
            )
            .returning(audit_log.c.id)
        ).scalar_one()
    return entry_id


def update_audit_details(catalog: Catalog, entry_id: int, details: dict[str, Any]) -> None:
    """Replace the details of entry ``entry_id`` (an aggregated entry's growing count)."""
    with catalog.single() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == entry_id).values(details=details))


def prune_audit(catalog: Catalog, older_than: datetime) -> int:
    """Delete the entries written before ``older_than``; returns how many went."""
    with catalog.single() as conn:
        return conn.execute(delete(audit_log).where(audit_log.c.at < older_than)).rowcount


def read_audit(catalog: Catalog, limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` entries, newest first."""
    with catalog.single() as conn:
        rows = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit))
        return [{**row._mapping, "at": row.at.isoformat()} for row in rows]
