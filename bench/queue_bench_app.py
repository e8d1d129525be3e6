"""The app of ``bench_queue.py``'s worker processes: a workflow of $BENCH_STEPS steps (each
returns a small dict) on the queue ``bench``, without limits. Each process notes every step it
runs and writes them to $BENCH_TRACE/<pid>.txt at exit, so the benchmark counts double runs
without adding writes to the catalog."""

from __future__ import annotations

import atexit
import os
from pathlib import Path

from warroom import AutomationEngine

engine = AutomationEngine()
queue = engine.queue("bench")
STEPS = int(os.environ.get("BENCH_STEPS", "10"))
_ran: list[str] = []


@engine.step()
def step(key: str, i: int) -> dict[str, int]:
    _ran.append(f"{key} {i}")
    return {"i": i}


@engine.workflow("ten")
def ten(key: str) -> int:
    for i in range(STEPS):
        step(key, i)
    return 1


@atexit.register
def _write_trace() -> None:
    trace = os.environ.get("BENCH_TRACE")
    if trace and _ran:
        (Path(trace) / f"{os.getpid()}.txt").write_text("\n".join(_ran) + "\n")
