"""Dependencies of the routes, as ``Annotated`` aliases: the services, and who is calling.

Authentication: ``Authorization: Bearer <token>``, a warroom API token or a configured JWT.
No or bad credentials: 401 with ``WWW-Authenticate: Bearer``; too small a role: 403. Failed
attempts from one client are slowed down (an in-memory penalty; it protects, it is not needed
for correctness, so replicas need not share it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from warroom.auth import JwtVerifier, Principal, TokenStore
from warroom.errors import AuthError, TooManyFailuresError
from warroom.services import Services

__all__ = ["Admin", "Operator", "ServicesDep", "Viewer"]


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


class FailurePenalty:
    """Delays answers to a client after repeated failed authentications."""

    def __init__(self, free: int = 5, window: float = 60.0, ceiling: float = 2.0) -> None:
        self.free, self.window, self.ceiling = free, window, ceiling
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def delay(self, client: str) -> float:
        """Seconds the client must wait before its next attempt (0: none)."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < self.window]
            self._failures[client] = recent
            excess = len(recent) - self.free
        return 0.0 if excess < 0 else min(self.ceiling, 0.1 * 2**excess)

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, []).append(time.monotonic())
            if len(self._failures) > 10_000:  # bounded memory under a scan
                self._failures.clear()


def authenticate(request: Request, services: ServicesDep) -> Principal:
    """The caller, from a valid token or JWT. A client that keeps presenting bad credentials
    gets 429 (at once: no thread is held asleep) until its failures age out; valid
    credentials are never refused for someone else's failures."""
    client = request.client.host if request.client else "unknown"
    penalty: FailurePenalty = request.app.state.penalty
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    token = credentials.strip()
    principal = None
    if scheme.lower() == "bearer" and token:
        principal = TokenStore(services.catalog).verify(token)
        jwt: JwtVerifier = request.app.state.jwt
        if principal is None and jwt.enabled:
            principal = jwt.verify(token)
    if principal is not None:
        request.state.principal = principal
        return principal
    wait = penalty.delay(client)
    if header:
        penalty.failed(client)
    if wait > 0:
        raise TooManyFailuresError(
            f"too many failed authentications from {client}; retry in {wait:.0f} s",
            retry_after=wait,
        )
    if not token:
        raise AuthError("missing bearer token: send Authorization: Bearer <token>")
    raise AuthError("invalid, expired or revoked token")


def require(role: str) -> Callable[[Principal], Principal]:
    def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        principal.require(role)
        return principal

    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]
