"""The API's audit middleware: every mutating call is written once it has been answered.

A call by an authenticated principal that is not refused gets an entry of its own. Refused
calls (no principal: 401, 429, a stranger's 404; or 403) are aggregated so that a brute force
cannot flood the catalog: the first one from a client (and actor) in a ``window`` gets an
entry, and the later ones in that window only add to its ``details.count`` and
``details.statuses``. Entries older than ``WARROOM_AUDIT_RETENTION_DAYS`` are deleted, checked
at most once per ``prune_every`` seconds when an entry is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from warroom.api.asgi import call_recording_status
from warroom.api.throttle import Recent
from warroom.audit import prune_audit, update_audit_details, write_audit
from warroom.auth import Principal
from warroom.errors import WarroomError
from warroom.services import Services

__all__ = ["Audit"]

log = logging.getLogger("warroom.api")
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass
class _Window:
    """The entry that aggregates one client's refused calls since ``opened``."""

    entry_id: int
    opened: float
    details: dict[str, Any]


class Audit:
    """ASGI middleware writing the audit log (see the module docstring). Its state is only
    touched on the event loop, between awaits."""

    def __init__(
        self,
        app: ASGIApp,
        services: Services,
        clock: Callable[[], float] = time.monotonic,
        window: float = 60.0,
        prune_every: float = 3600.0,
        max_clients: int = 10_000,
    ) -> None:
        self.app, self.services, self.clock = app, services, clock
        self.window, self.prune_every = window, prune_every
        self._windows: Recent[_Window] = Recent(max_clients)
        self._next_prune = float("-inf")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING:
            await self.app(scope, receive, send)
            return
        status = {"code": 500}
        try:
            await call_recording_status(self.app, scope, receive, send, status)
        finally:
            try:
                self._record(scope, status["code"])
            except WarroomError:
                log.exception("could not write the audit log")

    def _record(self, scope: Scope, status_code: int) -> None:
        principal: Principal | None = scope.get("state", {}).get("principal")
        client = (scope.get("client") or ("?",))[0]
        entry: dict[str, Any] = {
            "actor": principal.name if principal else "anonymous",
            "role": principal.role if principal else None,
            "method": scope["method"],
            "path": scope["path"],
            "status_code": status_code,
        }
        details = {
            "client": client,
            # The options of the call (days=0, dry_run=...); no route takes a secret in its
            # query string.
            "query": scope.get("query_string", b"").decode("latin-1")[:500],
            "credential": principal.kind if principal else None,
        }
        if principal is None or status_code == 403:
            self._record_refusal(f"{client} {entry['actor']}", entry, details)
        else:
            write_audit(self.services.catalog, **entry, details=details)
        self._prune_if_due()

    def _record_refusal(self, key: str, entry: dict[str, Any], details: dict[str, Any]) -> None:
        now, status = self.clock(), str(entry["status_code"])
        window = self._windows.get(key)
        if window is not None and now - window.opened < self.window:
            window.details["count"] += 1
            statuses = window.details["statuses"]
            statuses[status] = statuses.get(status, 0) + 1
            update_audit_details(self.services.catalog, window.entry_id, window.details)
            return
        details = {**details, "count": 1, "statuses": {status: 1}}
        entry_id = write_audit(self.services.catalog, **entry, details=details)
        self._windows.put(key, _Window(entry_id, now, details))

    def _prune_if_due(self) -> None:
        days = self.services.settings.audit_retention_days
        now = self.clock()
        if days == 0 or now < self._next_prune:
            return
        self._next_prune = now + self.prune_every
        removed = prune_audit(self.services.catalog, datetime.now(UTC) - timedelta(days=days))
        if removed:
            log.info("deleted %d audit entries older than %d days", removed, days)
