"""Webhook delivery to a real HTTP server on loopback: credentials in the URL become basic
auth, and the password never reaches the log or another server."""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from warroom.notify import Notifier

PASSWORD = "s3cr@t pass"  # percent-encoded in the URL: s3cr%40t%20pass


class Hook:
    """A loopback HTTP server answering every request with ``status`` (and ``location``)."""

    def __init__(self, status: int = 204, location: str | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                hook.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": self.rfile.read(length),
                    }
                )
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.port}/hooks/warroom"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks() -> Iterator[list[Hook]]:
    started: list[Hook] = []
    yield started
    for hook in started:
        hook.close()


def _notify(url: str, attempts: int = 1) -> None:
    notifier = Notifier([url], attempts=attempts, backoff=0)
    notifier.notify("backup_failed", "backup of prod failed", name="nightly")
    notifier.flush()


def test_credentials_in_the_url_are_sent_as_basic_auth(hooks: list[Hook]) -> None:
    hook = Hook()
    hooks.append(hook)
    _notify(hook.url("hook-user:s3cr%40t%20pass@"))
    [request] = hook.requests
    assert (request["method"], request["path"]) == ("POST", "/hooks/warroom")
    scheme, _, encoded = request["headers"]["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"hook-user:{PASSWORD}"
    assert json.loads(request["body"])["details"] == {"name": "nightly"}


def test_a_failing_webhook_logs_no_password(
    hooks: list[Hook], caplog: pytest.LogCaptureFixture
) -> None:
    hook = Hook(status=500)
    hooks.append(hook)
    with caplog.at_level(logging.WARNING, logger="warroom.notify"):
        _notify(hook.url("hook-user:s3cr%40t%20pass@"), attempts=2)
    assert len(hook.requests) == 2
    [record] = caplog.records
    assert "HTTP 500" in record.getMessage() and "hook-user@127.0.0.1" in record.getMessage()
    assert "s3cr" not in caplog.text


def test_a_redirect_does_not_carry_the_credentials_elsewhere(hooks: list[Hook]) -> None:
    elsewhere = Hook()
    hook = Hook(status=302, location=elsewhere.url())
    hooks += [elsewhere, hook]
    _notify(hook.url("hook-user:s3cr%40t%20pass@"))
    assert "Authorization" in hook.requests[0]["headers"]
    [followed] = elsewhere.requests
    assert "Authorization" not in followed["headers"]
