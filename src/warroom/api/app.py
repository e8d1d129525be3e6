"""Building the FastAPI application from services (never at import time)."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from warroom import __version__
from warroom.api.asgi import call_recording_status
from warroom.api.deps import FailurePenalty
from warroom.api.errors import error_response, install_error_handlers
from warroom.api.metrics import RequestMetrics, build_registry
from warroom.api.routes import checkpoints, manage, operations
from warroom.audit import write_audit
from warroom.auth import JwtVerifier
from warroom.errors import WarroomError
from warroom.jobs import JobRunner
from warroom.services import Services
from warroom.web import install_web

__all__ = ["create_app"]

log = logging.getLogger("warroom.api")
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


class BodyLimit:
    """Answers 413 to a request body larger than ``limit`` bytes (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._reject(scope, receive, send)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                # An HTTPException passes FastAPI's body reader; anything else becomes a 400.
                raise HTTPException(
                    413,
                    f"the request body is larger than {self.limit} bytes "
                    "(WARROOM_MAX_BODY_BYTES sets the limit)",
                )
            return message

        await self.app(scope, counting, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "body_too_large",
            f"the request body is larger than {self.limit} bytes "
            "(WARROOM_MAX_BODY_BYTES sets the limit)",
            limit=self.limit,
        )
        await response(scope, receive, send)


class Audit:
    """Writes every mutating call to the audit log once it has been answered."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app, self.services = app, services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING:
            await self.app(scope, receive, send)
            return
        status = {"code": 500}
        try:
            await call_recording_status(self.app, scope, receive, send, status)
        finally:
            principal = scope.get("state", {}).get("principal")
            try:
                write_audit(
                    self.services.catalog,
                    actor=principal.name if principal else "anonymous",
                    role=principal.role if principal else None,
                    method=scope["method"],
                    path=scope["path"],
                    status_code=status["code"],
                    details={
                        "client": (scope.get("client") or ("?",))[0],
                        # The options of the call (days=0, dry_run=...); no route takes a
                        # secret in its query string.
                        "query": scope.get("query_string", b"").decode("latin-1")[:500],
                        "credential": principal.kind if principal else None,
                    },
                )
            except WarroomError:
                log.exception("could not write the audit log")


def create_app(services: Services, jobs: JobRunner) -> FastAPI:
    """The application over ``services``; ``jobs`` runs the long operations. The API is
    under ``/api/v1``, the web UI at ``/`` (:mod:`warroom.web`)."""
    settings = services.settings
    app = FastAPI(
        title="War Room Checkpoints",
        version=__version__,
        description="Workflow, database and deployment checkpoints. Authenticate with "
        "`Authorization: Bearer <token>`.",
    )
    app.state.services = services
    app.state.jobs = jobs
    app.state.penalty = FailurePenalty()
    app.state.jwt = JwtVerifier(
        settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
        settings.jwt_public_key,
        settings.jwt_audience,
        settings.jwt_issuer,
    )
    install_error_handlers(app)
    app.include_router(checkpoints.router)
    app.include_router(operations.router)
    app.include_router(manage.router)
    install_web(app)
    registry = build_registry(services)
    app.state.metrics_registry = registry
    app.add_middleware(Audit, services=services)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, registry=registry)
    return app
