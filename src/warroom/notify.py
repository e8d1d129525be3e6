"""Notifications: a JSON POST to each configured webhook when something needs a person.

The message carries a Slack-compatible ``text`` beside structured fields. Delivery is retried
with backoff in a background thread, and a failing webhook never fails the job that notified:
it is only logged.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from warroom.redact import redact_url

__all__ = ["Notifier"]

log = logging.getLogger("warroom.notify")


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
            request = urllib.request.Request(
                url, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    if 200 <= response.status < 300:
                        return
                    problem = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                problem = str(getattr(exc, "reason", exc))
            if attempt < self.attempts:
                time.sleep(self.backoff * 2 ** (attempt - 1))
        log.warning(
            "webhook %s failed after %d attempts: %s", redact_url(url), self.attempts, problem
        )
