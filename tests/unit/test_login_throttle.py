"""The login back-off on its own, with an injected clock."""

from __future__ import annotations

from tests.e2e.inprocess import Clock
from warroom.api.throttle import LoginThrottle, Recent


def _throttle(clock: Clock, **kwargs: int) -> LoginThrottle:
    return LoginThrottle(free=3, base=1.0, ceiling=60.0, forget_after=900.0, clock=clock, **kwargs)


def test_bars_double_up_to_the_ceiling_without_overflow() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    for _ in range(3):
        throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 0.0  # the free failures
    bars = []
    for _ in range(5000):  # far past 2**1024, where a float overflows
        throttle.failed("10.0.0.1")
        bars.append(throttle.retry_after("10.0.0.1"))
        clock.advance(bars[-1])
    assert bars[:8] == [1, 2, 4, 8, 16, 32, 60, 60] and set(bars[8:]) == {60}
    assert throttle.retry_after("10.0.0.2") == 0.0  # another client is not barred


def test_failures_are_forgotten_after_a_quiet_spell() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    for _ in range(10):
        throttle.failed("10.0.0.1")
    clock.advance(899)
    assert throttle.retry_after("10.0.0.1") == 0.0  # the bar is over, the count is not
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 60.0
    clock.advance(900)
    for _ in range(3):
        throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 0.0


def test_memory_is_bounded_by_the_clients_seen_last() -> None:
    clock = Clock()
    throttle = _throttle(clock, max_clients=100)
    for _ in range(4):
        throttle.failed("attacker")
    for n in range(99):
        throttle.failed(f"scan-{n}")
    assert throttle.retry_after("attacker") == 1.0
    throttle.failed("scan-99")
    assert throttle.retry_after("attacker") == 0.0  # forgotten: the oldest of 101


def test_recent_forgets_the_least_recently_stored() -> None:
    recent: Recent[int] = Recent(2)
    recent.put("a", 1)
    recent.put("b", 2)
    recent.put("a", 3)
    recent.put("c", 4)
    assert (recent.get("a"), recent.get("b"), recent.get("c")) == (3, None, 4)
