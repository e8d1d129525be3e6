"""Critical sections hold signals back until they end; fault points do nothing unless asked."""

from __future__ import annotations

import os
import signal
from types import FrameType

import pytest

from warroom.critical import fault_point, signals_deferred


def test_signals_that_come_inside_are_delivered_once_on_leaving() -> None:
    seen: list[str] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        seen.append(f"handled {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            seen.append("the section ran on")
        assert seen == ["the section ran on", "handled SIGTERM"]
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_ctrl_c_inside_interrupts_after_the_section() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), signals_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        done.append(True)
    assert done == [True]


def test_fault_points_do_nothing_unless_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARROOM_FAULT_POINT", "elsewhere")
    fault_point("here")  # still alive
