"""Work that a signal must not cut in half, and the fault points where crash tests cut it.

:func:`signals_deferred` holds back the signals that end or stop a process from outside (SIGHUP
from a dropped SSH session, SIGTERM, SIGINT, SIGQUIT, SIGTSTP) while a short critical section
runs, and delivers them when it ends. SIGKILL and a server crash cannot be held back: code in a
critical section must survive them by other means (a transaction).

:func:`fault_point` lets the tests stop the process at an exact moment. When the environment
variable ``WARROOM_FAULT_POINT`` names the point reached, the process kills itself with SIGKILL;
when ``WARROOM_FAULT_COMMAND`` is set too, it runs that shell command there instead (e.g. one
that crashes the database server, or sends this process a signal: ``$PPID`` is this process) and
goes on. Neither variable is a setting; nothing sets them outside the tests.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["DEFERRED_SIGNALS", "fault_point", "signals_deferred"]

DEFERRED_SIGNALS = (
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTERM,
    signal.SIGTSTP,
)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold back :data:`DEFERRED_SIGNALS` while inside; on leaving, restore the handlers that
    were there and raise each signal that came, once, in the order they came. Signals only
    reach Python's main thread: elsewhere (the service's workers) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        if signum not in received:
            received.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in DEFERRED_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for held in received:
            signal.raise_signal(held)


def fault_point(name: str) -> None:
    """Reached point ``name``: kill this process, or run the fault command, when the tests ask
    for it (see the module docstring); otherwise nothing."""
    if os.environ.get("WARROOM_FAULT_POINT") != name:
        return
    command = os.environ.get("WARROOM_FAULT_COMMAND")
    if command:
        import subprocess  # here: wal push reaches fault points, and starts fast

        subprocess.run(command, shell=True, check=False)
    else:
        os.kill(os.getpid(), signal.SIGKILL)
