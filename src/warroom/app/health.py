"""Readiness (``GET /readyz``): the catalog and the storage are reachable and the system is
healthy (:func:`warroom.status.system_status`). Short codes only: it needs no credentials."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from warroom.errors import WarroomError
from warroom.services import Services
from warroom.status import system_status

__all__ = ["Readiness", "readiness"]


@dataclass(frozen=True)
class Readiness:
    """``checks``: ``catalog``, ``storage`` and, once the catalog answers, ``backups``, each
    ``ok`` or a short reason."""

    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(value == "ok" for value in self.checks.values())

    def to_dict(self) -> dict[str, Any]:
        return {"status": "ready" if self.ready else "not ready", "checks": self.checks}


def readiness(services: Services, now: datetime) -> Readiness:
    checks: dict[str, str] = {}
    try:
        services.catalog.ping()
        checks["catalog"] = "ok"
    except WarroomError:
        checks["catalog"] = "unreachable"
    try:
        free = services.backup_storage.free_bytes()
        checks["storage"] = "ok" if free is None or free > 0 else "no free space"
    except OSError:
        checks["storage"] = "unreachable"
    if checks["catalog"] == "ok":
        checks["backups"] = "ok" if system_status(services, now)["healthy"] else "unhealthy"
    return Readiness(checks)
