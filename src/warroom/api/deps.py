"""Dependencies of the routes, as ``Annotated`` aliases: the services, the job runner, and who
is calling.

Authentication: ``Authorization: Bearer <token>``, a warroom API token or a configured JWT.
No or bad credentials: 401 with ``WWW-Authenticate: Bearer``; too small a role: 403. A client
that keeps failing is barred for a while (:mod:`warroom.api.throttle`): 429 with
``Retry-After``, before its credentials are looked at.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from warroom.api.throttle import LoginThrottle
from warroom.auth import JwtVerifier, Principal
from warroom.errors import AuthError, TooManyFailuresError
from warroom.jobs import JobRunner
from warroom.services import Services

__all__ = ["Admin", "JobsDep", "Operator", "ServicesDep", "Viewer"]


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_jobs(request: Request) -> JobRunner:
    jobs: JobRunner = request.app.state.jobs
    return jobs


JobsDep = Annotated[JobRunner, Depends(get_jobs)]


def authenticate(request: Request, services: ServicesDep) -> Principal:
    """The caller, from a valid token or JWT. A barred client gets 429 at once; one client's
    failures never bar another."""
    client = request.client.host if request.client else "unknown"
    throttle: LoginThrottle = request.app.state.throttle
    wait = throttle.retry_after(client)
    if wait > 0:
        seconds = math.ceil(wait)
        raise TooManyFailuresError(
            f"too many failed authentications from {client}; retry in {seconds} s",
            retry_after=seconds,
        )
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    token = credentials.strip()
    principal = None
    if scheme.lower() == "bearer" and token:
        principal = services.tokens.verify(token)
        jwt: JwtVerifier = request.app.state.jwt
        if principal is None and jwt.enabled:
            principal = jwt.verify(token)
    if principal is not None:
        request.state.principal = principal
        return principal
    if header:
        throttle.failed(client)
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
