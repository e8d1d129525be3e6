"""The audit log: every mutating API call, who made it, when, and its result."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from warroom.catalog import Catalog
from warroom.catalog.schema import audit_log

__all__ = ["read_audit", "write_audit"]


def write_audit(
    catalog: Catalog,
    *,
    actor: str,
    role: str | None,
    method: str,
    path: str,
    status_code: int,
    details: dict[str, Any] | None = None,
) -> None:
    with catalog.single() as conn:
        conn.execute(
            audit_log.insert().values(
                at=datetime.now(UTC),
                actor=actor,
                role=role,
                method=method,
                path=path[:500],
                status_code=status_code,
                outcome="success" if status_code < 400 else "failure",
                details=details or {},
            )
        )


def read_audit(catalog: Catalog, limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` entries, newest first."""
    with catalog.single() as conn:
        rows = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit))
        return [{**row._mapping, "at": row.at.isoformat()} for row in rows]
