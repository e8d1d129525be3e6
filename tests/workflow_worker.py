"""A worker process for the workflow tests: ``python -m tests.workflow_worker COMMAND [ID]``.

Its workflow ``fanout`` maps the step ``square`` over 0..5 in parallel (``square(n)`` logs
"item-<n>" and passes the fault point ``fanout-<n>``). Its workflow ``report`` has three steps
that append "<step> <pid>" to the file at $STEP_LOG,
so a test can count exactly which steps ran, and in which process. The step ``slow`` waits
until the file $RELEASE exists (or is killed while it waits).

Settings come from the environment: WARROOM_CATALOG_URL, CHECKPOINT_DIR and
WARROOM_WORKFLOW_LEASE_SECONDS.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from warroom import AutomationEngine
from warroom.critical import fault_point

engine = AutomationEngine()


def _log(step: str) -> None:
    with open(os.environ["STEP_LOG"], "a") as log:
        log.write(f"{step} {os.getpid()}\n")


@engine.step()
def fetch(day: str) -> list[int]:
    _log("fetch")
    return [1, 2, 3]


@engine.step()
def slow(rows: list[int]) -> int:
    _log("slow-start")
    release = Path(os.environ["RELEASE"])
    while not release.exists():
        time.sleep(0.05)
    _log("slow")
    return sum(rows)


@engine.step()
def publish(total: int) -> str:
    _log("publish")
    return f"total={total}"


@engine.workflow("report")
def report(day: str) -> str:
    return publish(slow(fetch(day)))


@engine.step()
def square(n: int) -> int:
    _log(f"item-{n}")
    fault_point(f"fanout-{n}")
    return n * n


@engine.workflow("fanout")
def fanout() -> list[int]:
    return engine.map(square, range(6), max_workers=3)


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "run":
        engine.execute_workflow("report", "2026-11-26", execution_id=sys.argv[2])
    elif command == "fanout":
        engine.execute_workflow("fanout", execution_id=sys.argv[2])
    elif command == "resume":
        engine.resume(sys.argv[2])
    elif command == "recover":
        print(",".join(engine.recover()))
    engine.close()
