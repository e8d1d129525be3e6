"""Every error answer is JSON, ``{"error": {"code", "message", "details"}}``, with the status
the error tree gives it; nothing a client sends can produce a 500 with a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from warroom.errors import WarroomError

__all__ = ["error_response", "install_error_handlers"]

log = logging.getLogger("warroom.api")


def error_response(status: int, code: str, message: str, **details: Any) -> JSONResponse:
    """The JSON error answer; a 401 says ``WWW-Authenticate: Bearer``, a ``retry_after``
    detail becomes ``Retry-After``."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if "retry_after" in details:
        headers["Retry-After"] = str(details["retry_after"])
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details}},
        status_code=status,
        headers=headers,
    )


def _field(error: Any) -> str:
    """Where a validation error is: its location, and within a value ``ctx["at"]``
    (``state.steps[2].name``; see :func:`warroom.api.models.storable`)."""
    within = str((error.get("ctx") or {}).get("at", ""))
    return ".".join(str(p) for p in error["loc"] if p != "body") + within or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WarroomError)
    async def warroom_error(request: Request, exc: WarroomError) -> JSONResponse:
        return error_response(exc.http_status, exc.code, exc.message, **exc.details)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": "body", "problem": "the body is not valid JSON"}
            if error["type"] == "json_invalid"
            else {"field": _field(error), "problem": error["msg"]}
            for error in exc.errors()
        ]
        first = problems[0] if problems else {"field": "body", "problem": "invalid"}
        return error_response(
            422, "invalid_request", f"{first['field']}: {first['problem']}", problems=problems
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code in (404, 405) and exc.detail in ("Not Found", "Method Not Allowed"):
            return error_response(
                exc.status_code,
                "no_route",
                f"no route {request.method} {request.url.path}; see /openapi.json",
            )
        code = "body_too_large" if exc.status_code == 413 else "http_error"
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "an unexpected error occurred; see the log")
