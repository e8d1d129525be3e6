"""Deployment history (``GET /api/v1/deployments`` and the web UI): every recorded validation,
deploy and rollback, newest first, each with its validation report."""

from __future__ import annotations

from typing import Any

from warroom.errors import NotFoundError
from warroom.services import Services

__all__ = ["deployment_checkpoint", "deployment_history"]


def deployment_history(services: Services, limit: int = 200) -> dict[str, Any]:
    """``{"current_version", "deployments": [...]}``: each deployment checkpoint as the catalog
    holds it (``details`` is its report: checks, stages, versions), newest first."""
    records = services.catalog.list_checkpoints("deployment")
    return {
        "current_version": services.deployments.current_version(),
        "deployments": [record.to_dict() for record in reversed(records)][:limit],
    }


def deployment_checkpoint(services: Services, name: str) -> dict[str, Any]:
    """The deployment checkpoint ``name`` as the catalog holds it (NotFoundError when none)."""
    record = services.catalog.get_checkpoint("deployment", name)
    if record is None:
        raise NotFoundError(f"no deployment checkpoint named {name!r}", name=name)
    return record.to_dict()
