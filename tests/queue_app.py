"""The app of the queue tests' worker processes: ``warroom worker --app tests.queue_app:engine``.

Its steps write a side table in the PostgreSQL database at $SIDE_DB: ``effects`` (a unique key
per step that ran, so a double run fails loudly, with the number of executions inside their
critical section at that moment), ``active`` (that section) and ``slots`` (one row per run of
the scheduled workflow, without a unique key, so a twice-run slot shows; the tests create
them). ``blocker`` waits for
the file $RELEASE; ``waiter`` waits for a message under the topic ``go``;
``spawner`` enqueues and starts children. Settings come from
the environment (WARROOM_CATALOG_URL, CHECKPOINT_DIR, WARROOM_WORKFLOW_LEASE_SECONDS).
"""

from __future__ import annotations

import os
import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from warroom import AutomationEngine
from warroom.critical import fault_point

engine = AutomationEngine()
jobs = engine.queue("jobs", concurrency=2, priority=True)
work = engine.queue("work", worker_concurrency=1)


@engine.step()
def enter(key: str) -> int:
    with psycopg.connect(os.environ["SIDE_DB"], autocommit=True) as conn:
        conn.execute("INSERT INTO active VALUES (%s)", (key,))
        (count,) = conn.execute("SELECT count(*) FROM active").fetchone() or (0,)
        conn.execute(
            "INSERT INTO effects (key, pid, concurrent) VALUES (%s, %s, %s)",
            (f"enter:{key}", os.getpid(), count),
        )
    threading.Event().wait(0.02)  # widens the overlap, so that a broken limit would show
    return int(count)


@engine.step()
def leave(key: str) -> None:
    fault_point(f"leave-{key}")
    with psycopg.connect(os.environ["SIDE_DB"], autocommit=True) as conn:
        conn.execute("DELETE FROM active WHERE key = %s", (key,))
        conn.execute(
            "INSERT INTO effects (key, pid, concurrent) VALUES (%s, %s, 0)",
            (f"leave:{key}", os.getpid()),
        )


@engine.workflow("job")
def job(key: str) -> str:
    enter(key)
    leave(key)
    return key


def _log(word: str) -> None:
    with open(os.environ["STEP_LOG"], "a") as log:
        log.write(f"{word} {os.getpid()}\n")


@engine.step()
def wait_release() -> None:
    _log("wait-start")
    release, pause = Path(os.environ["RELEASE"]), threading.Event()
    while not release.exists():
        pause.wait(0.05)
    _log("wait-done")


@engine.step()
def after() -> None:
    _log("after")


@engine.workflow("blocker")
def blocker() -> str:
    wait_release()
    after()
    return "done"


@engine.workflow("sleeper")
def sleeper(seconds: float) -> str:
    engine.sleep(seconds)
    after()
    return "woke"


@engine.workflow("waiter")
def waiter(seconds: float) -> Any:
    got = engine.recv("go", timeout=seconds)
    after()
    return got


@engine.step()
def mark(point: str) -> None:
    fault_point(point)


@engine.workflow("spawner")
def spawner() -> list[str]:
    """Enqueues a job under an id of its own making (a new one each run, as user code may)
    and starts a blocker, then reaches the fault point ``spawned``."""
    queued = work.enqueue("job", "spawned", execution_id=f"spawned-{uuid.uuid4().hex}")
    started = engine.start_workflow("blocker")
    mark("spawned")
    return [queued.execution_id, started.execution_id]


@engine.workflow("approval")
def approval(change: str) -> str:
    engine.set_event("status", "waiting")
    decision = engine.recv("approval", timeout=600)
    engine.set_event("status", decision)
    return f"{change}: {decision}"


@engine.scheduled("* * * * *")
def every_minute(slot: datetime) -> None:
    with psycopg.connect(os.environ["SIDE_DB"], autocommit=True) as conn:
        conn.execute("INSERT INTO slots VALUES (%s, %s)", (slot.isoformat(), os.getpid()))
