"""Back-off for clients that keep failing to authenticate (in memory, per process).

A client (the peer address the server sees) may fail ``free`` times. Its n-th failure after
those bars it for ``base * 2**(n-1)`` seconds, at most ``ceiling``: while it is barred, every
request it makes that needs credentials is answered 429 with ``Retry-After`` before its
credentials are even looked at, so guessing is slowed whatever the guesses, and no thread is
held asleep. A client's failures are forgotten ``forget_after`` seconds after its last one.
Only the ``max_clients`` clients seen last are remembered, so memory is bounded under a scan.
Replicas do not share this state: it protects, it is not needed for correctness.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["LoginThrottle", "Recent"]

V = TypeVar("V")
MAX_EXPONENT = 64  # 2.0**64 is far above any ceiling, far below a float's range


class Recent(Generic[V]):
    """At most ``limit`` values by key; storing one more forgets the least recently stored."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[str, V] = OrderedDict()

    def get(self, key: str) -> V | None:
        return self._items.get(key)

    def put(self, key: str, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self.limit:
            self._items.popitem(last=False)


@dataclass(frozen=True)
class _Failures:
    count: int
    last: float
    barred_until: float


class LoginThrottle:
    """Which clients must wait before presenting credentials again (see the module docstring).

    ``clock`` returns seconds on a monotonic scale; tests pass their own."""

    def __init__(
        self,
        *,
        free: int = 5,
        base: float = 1.0,
        ceiling: float = 60.0,
        forget_after: float = 900.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free, self.base, self.ceiling, self.forget_after = free, base, ceiling, forget_after
        self.clock = clock
        self._clients: Recent[_Failures] = Recent(max_clients)
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """Seconds before ``client`` may present credentials again (0: now)."""
        now = self.clock()
        with self._lock:
            failures = self._clients.get(client)
        return 0.0 if failures is None else max(0.0, failures.barred_until - now)

    def failed(self, client: str) -> None:
        """Count a failed authentication of ``client``; past ``free`` ones, bar it."""
        now = self.clock()
        with self._lock:
            previous = self._clients.get(client)
            if previous is None or now - previous.last >= self.forget_after:
                count = 1
            else:
                count = previous.count + 1
            excess = count - self.free
            barred = 0.0
            if excess > 0:
                barred = min(self.ceiling, self.base * 2.0 ** min(excess - 1, MAX_EXPONENT))
            self._clients.put(client, _Failures(count, now, now + barred))
