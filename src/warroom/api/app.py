"""Building the FastAPI application from services (never at import time)."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from warroom import __version__
from warroom.api.auditing import Audit
from warroom.api.docs import install_docs
from warroom.api.errors import error_response, install_error_handlers
from warroom.api.metrics import RequestMetrics, build_registry
from warroom.api.routes import checkpoints, manage, operations, workflows
from warroom.api.throttle import LoginThrottle
from warroom.auth import JwtVerifier
from warroom.jobs import JobRunner
from warroom.services import Services
from warroom.web import install_web

__all__ = ["create_app"]


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


def create_app(
    services: Services, jobs: JobRunner, *, clock: Callable[[], float] = time.monotonic
) -> FastAPI:
    """The application over ``services``; ``jobs`` runs the long operations. The API is
    under ``/api/v1``, the web UI at ``/`` (:mod:`warroom.web`). ``clock`` (monotonic
    seconds) times the login back-off and the audit windows."""
    settings = services.settings
    app = FastAPI(
        title="War Room Checkpoints",
        version=__version__,
        description="Workflow, database and deployment checkpoints. Authenticate with "
        "`Authorization: Bearer <token>`.",
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    app.state.services = services
    app.state.jobs = jobs
    app.state.throttle = LoginThrottle(clock=clock)
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
    app.include_router(workflows.router)
    install_web(app)
    registry = build_registry(services)
    app.state.metrics_registry = registry
    app.add_middleware(Audit, services=services, clock=clock)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, registry=registry)
    return app
