"""A small helper shared by the ASGI middlewares."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["call_recording_status"]


async def call_recording_status(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, status: dict[str, int]
) -> None:
    """Call ``app``, writing the response's status code into ``status["code"]`` as it goes
    (it stays 500 if the app fails before answering)."""
    status.setdefault("code", 500)

    async def recording(message: Message) -> None:
        if message["type"] == "http.response.start":
            status["code"] = message["status"]
        await send(message)

    await app(scope, receive, recording)
