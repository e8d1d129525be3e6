"""Notifications: a JSON POST to each configured webhook when something needs a person.

The message carries a Slack-compatible ``text`` beside structured fields. Credentials in a URL
(``https://user:pass@hooks.example/x``) are sent as HTTP basic auth and never logged. Delivery
is retried with backoff in a background thread, and a failing webhook never fails the job that
notified: it is only logged.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from warroom.redact import redact_text, redact_url, url_password

__all__ = ["Notifier"]

log = logging.getLogger("warroom.notify")
JSON = {"Content-Type": "application/json"}


class Notifier:
    """Posts events to webhooks. ``notify`` returns at once; ``flush`` waits for delivery."""

    def __init__(
        self, urls: Sequence[str], attempts: int = 3, backoff: float = 1.0, timeout: float = 5.0
    ) -> None:
        self.urls = [url.strip() for url in urls if url.strip()]
        self.attempts, self.backoff, self.timeout = attempts, backoff, timeout
        self._threads: list[threading.Thread] = []

    @classmethod
    def from_setting(cls, value: str) -> Notifier:
        return cls(value.split(","))

    def notify(self, event: str, summary: str, severity: str = "error", **details: Any) -> None:
        if not self.urls:
            return
        message = {
            "event": event,
            "severity": severity,
            "summary": summary,
            "details": details,
            "at": datetime.now(UTC).isoformat(),
            "text": f":rotating_light: War Room Checkpoints: {summary}",
        }
        body = json.dumps(message, default=str).encode()
        for url in self.urls:
            thread = threading.Thread(
                target=self._deliver, args=(url, body), name="webhook", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self._threads = [t for t in self._threads if t.is_alive()]

    def flush(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def _deliver(self, url: str, body: bytes) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                with urllib.request.urlopen(_post(url, body), timeout=self.timeout) as response:
                    if 200 <= response.status < 300:
                        return
                    problem = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                problem = redact_text(str(getattr(exc, "reason", exc)), url_password(url))
            if attempt < self.attempts:
                time.sleep(self.backoff * 2 ** (attempt - 1))
        log.warning(
            "webhook %s failed after %d attempts: %s", redact_url(url), self.attempts, problem
        )


def _post(url: str, body: bytes) -> urllib.request.Request:
    """A JSON POST of ``body`` to ``url``. The URL's ``user:pass@``, if any, goes in an
    ``Authorization: Basic`` header instead (urllib would take it for part of the host), one
    that a redirect does not carry to another server."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return urllib.request.Request(url, data=body, method="POST", headers=JSON)
    bare = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
    request = urllib.request.Request(bare, data=body, method="POST", headers=JSON)
    userinfo = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    request.add_unredirected_header(
        "Authorization", "Basic " + base64.b64encode(userinfo.encode()).decode()
    )
    return request
