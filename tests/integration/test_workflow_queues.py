"""Queues, workers, durable sleep, messages and events, scheduled workflows, forks (issue 17).

The worker tests run several ``warroom worker`` processes on one PostgreSQL catalog, with the
app ``tests.queue_app``; its steps write a side table with a unique key per step, so a double
run fails the execution. The store-level tests run on SQLite and PostgreSQL. Leases are
expired by moving the catalog's record of them, never by waiting."""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import update

from tests.e2e.server import running_server
from tests.workflowtools import expire_leases, new_engine
from warroom import AutomationEngine
from warroom.auth import TokenStore
from warroom.catalog import open_catalog
from warroom.catalog.schema import workflow_steps
from warroom.errors import ConflictError, InputError
from warroom.workflow import Worker
from warroom.workflow.worker import list_workers

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.queue_app:engine"
SIDE_TABLES = """
CREATE TABLE effects (key text PRIMARY KEY, pid int NOT NULL, concurrent int NOT NULL);
CREATE TABLE active (key text PRIMARY KEY);
CREATE TABLE slots (slot text NOT NULL, pid int NOT NULL);
"""


@pytest.fixture
def engine(tmp_path: Path, catalog_url: str) -> Iterator[AutomationEngine]:
    with new_engine(tmp_path, catalog_url) as built:
        yield built


# -- store level, on SQLite and PostgreSQL ----------------------------------------------------


def test_priority_and_deduplication(engine: AutomationEngine) -> None:
    ran: list[str] = []

    @engine.workflow("task")
    def task(name: str) -> str:
        ran.append(name)
        return name

    queue = engine.queue("ordered", concurrency=1, priority=True)
    for n, (name, priority) in enumerate((("low", 5), ("first", 1), ("mid", 3), ("second", 1))):
        queue.enqueue("task", name, priority=priority, execution_id=f"t{n}")  # ids break ties
    held = queue.enqueue("task", "dedup", deduplication_id="change-7", priority=9)
    with pytest.raises(ConflictError, match=f"{held.execution_id}.*change-7"):
        queue.enqueue("task", "again", deduplication_id="change-7")
    assert held.status == "enqueued"
    with pytest.raises(InputError, match="no priorities"):
        engine.queue("plain").enqueue("task", "x", priority=2)
    Worker(engine, queues=["ordered"], concurrency=1).run_until_idle()
    assert ran == ["first", "second", "mid", "low", "dedup"]
    assert held.get_result(timeout=0) == "dedup"
    again = queue.enqueue("task", "again", deduplication_id="change-7")  # free once it ended
    assert again.status == "enqueued"


def test_claims_respect_global_concurrency_and_rate_limits(engine: AutomationEngine) -> None:
    @engine.workflow("noop")
    def noop(n: int) -> int:
        return n

    limited = engine.queue("limited", concurrency=2)
    rated = engine.queue("rated", rate_limit=(3, 3600))
    for n in range(5):
        limited.enqueue("noop", n)
        rated.enqueue("noop", n)
    first = engine._claim_queued(limited, 10)
    assert [p.args for p in first] == [[0], [1]]
    assert engine._claim_queued(limited, 10) == []  # two running: the limit holds
    engine._run_plan(first[0])
    assert [p.args for p in engine._claim_queued(limited, 10)] == [[2]]
    claimed = engine._claim_queued(rated, 10)
    assert len(claimed) == 3
    for plan in claimed:
        engine._run_plan(plan)
    assert engine._claim_queued(rated, 10) == []  # 3 per hour, on the catalog's clock


def test_start_workflow_runs_in_the_background(engine: AutomationEngine) -> None:
    gate = threading.Event()

    @engine.workflow("gated")
    def gated(n: int) -> int:
        gate.wait()
        return n * 2

    handle = engine.start_workflow("gated", 21, execution_id="bg-1")
    assert handle.execution_id == "bg-1" and handle.status == "running"
    with pytest.raises(TimeoutError):
        handle.get_result(timeout=0)
    gate.set()
    assert handle.get_result(timeout=60) == 42
    assert engine.start_workflow("gated", 21, execution_id="bg-1").get_result() == 42


def test_fork_replays_the_steps_before_and_runs_the_rest(engine: AutomationEngine) -> None:
    calls: Counter[str] = Counter()

    @engine.step()
    def one() -> int:
        calls["one"] += 1
        return 1

    @engine.step()
    def two(x: int) -> int:
        calls["two"] += 1
        return x + 1

    @engine.step()
    def three(x: int) -> int:
        calls["three"] += 1
        return x * 10

    @engine.workflow("chain")
    def chain() -> int:
        return three(two(one()))

    source = engine.execute_workflow("chain")
    forked = engine.fork(source, from_step=1)
    assert engine.get_execution(forked).status == "pending"
    assert [s.name for s in engine.get_execution(forked).steps] == ["one"]
    engine.resume(forked)
    assert engine.get_execution(forked).result == 20
    assert calls == {"one": 1, "two": 2, "three": 2}
    with pytest.raises(InputError):
        engine.fork(source, from_step=-1)


def test_sleep_records_its_wake_time(tmp_path: Path, catalog_url: str) -> None:
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    now = {"t": start}
    with new_engine(tmp_path, catalog_url, clock=lambda: now["t"]) as engine:

        @engine.workflow("nap")
        def nap() -> str:
            engine.sleep(3600)
            return "up"

        handle = engine.start_workflow("nap", execution_id="nap-1")  # records 10:00
        _until(lambda: len(engine.get_execution("nap-1").steps) == 1, "the wake time recorded")
        engine.cancel("nap-1")  # stops the sleep: the execution ends there
        with pytest.raises(ConflictError, match="cancelled"):
            handle.get_result(timeout=60)
        (step,) = engine.get_execution("nap-1").steps
        assert step.kind == "sleep"
        now["t"] = start + timedelta(hours=1, seconds=1)
        engine.resume("nap-1")
        execution = engine.get_execution("nap-1")
        assert execution.status == "succeeded" and len(execution.steps) == 1
        assert engine.checkpoints("nap-1")[0][1] == start + timedelta(hours=1)


def test_messages_and_events_are_once_across_a_resume(engine: AutomationEngine) -> None:
    flaky = {"fail": True}

    @engine.step()
    def check() -> None:
        if flaky["fail"]:
            raise ConnectionError("down")

    @engine.workflow("listener")
    def listener() -> list[Any]:
        got = [engine.recv("orders", timeout=0), engine.recv("orders", timeout=0)]
        engine.set_event("seen", len(got))
        check()
        return got

    @engine.workflow("sender")
    def sender(target: str) -> str:
        engine.send(target, "orders", {"n": 1})
        check()
        return "sent"

    inbox = engine.queue("inbox").enqueue("listener", execution_id="inbox")
    engine.execute_workflow("sender", "inbox", execution_id="out")  # sends, then fails
    flaky["fail"] = False
    engine.resume("out")  # replays its send: nothing more is delivered
    flaky["fail"] = True
    for _ in range(2):  # a retried send with one key delivers once
        engine.send("inbox", "orders", {"n": 2}, idempotency_key="retried")
    assert [m["topic"] for m in engine._messages.pending("inbox")] == ["orders", "orders"]
    Worker(engine, concurrency=1).run_until_idle()  # receives both, then fails
    assert inbox.status == "failed" and engine._messages.pending("inbox") == []
    engine.send("inbox", "orders", {"n": 3})
    flaky["fail"] = False
    engine.resume("inbox")  # its receipts replay; the third message is not taken
    assert inbox.get_result(timeout=0) == [{"n": 1}, {"n": 2}]
    assert len(engine._messages.pending("inbox")) == 1
    assert engine.get_event("inbox", "seen", timeout=0) == 2
    assert engine.events("inbox") == {"seen": 2}
    with pytest.raises(InputError, match="inside a workflow"):
        engine.recv("orders")


def test_a_resumed_get_event_waits_only_until_its_recorded_deadline(
    tmp_path: Path, catalog_url: str
) -> None:
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    now = {"t": start}
    with new_engine(tmp_path, catalog_url, clock=lambda: now["t"]) as engine:

        @engine.workflow("watch")
        def watch() -> Any:
            return engine.get_event("watch-1", "approved", timeout=3600)

        handle = engine.start_workflow("watch", execution_id="watch-1")
        _until(lambda: len(engine.get_execution("watch-1").steps) == 1, "the deadline recorded")
        engine.cancel("watch-1")  # the wait stops here, as a crash would stop it
        with pytest.raises(ConflictError, match="cancelled"):
            handle.get_result(timeout=60)
        assert engine.checkpoints("watch-1")[0][1] == start + timedelta(hours=1)
        now["t"] = start + timedelta(hours=1, seconds=1)  # the deadline passed meanwhile
        engine.resume("watch-1")  # a whole new wait would take an hour: it returns at once
        execution = engine.get_execution("watch-1")
        assert execution.status == "succeeded" and execution.result is None
        assert [(s.kind, s.status) for s in execution.steps] == [("event", "succeeded")]
        with pytest.raises(InputError, match="timeout must be 0 seconds or more"):
            engine.get_event("watch-1", "approved", timeout=-1)


def test_async_workflows_wait_without_blocking_the_loop(engine: AutomationEngine) -> None:
    @engine.workflow("waiter")
    async def waiter() -> list[Any]:
        await engine.sleep_async(0.01)
        got = await engine.recv_async("go", timeout=30)
        engine.set_event("got", got)
        seen = await engine.get_event_async("announcer", "ready", timeout=30)
        return [got, seen]

    @engine.workflow("announcer")
    async def announcer() -> None:
        await engine.recv_async("start", timeout=30)
        engine.send("waiter", "reply", "sent from an async workflow")
        engine.set_event("ready", "yes")

    def waiting_at(number: int) -> bool:
        steps = engine.get_execution("waiter").steps
        return len(steps) > number and steps[number].status == "started"

    async def operator() -> None:
        """Runs only if the waits leave the loop free: each waits for what it does."""
        while not waiting_at(1):  # recv_async recorded its deadline and waits
            await asyncio.sleep(0.01)
        engine.send("waiter", "go", "approved")
        while not waiting_at(3):  # get_event_async waits
            await asyncio.sleep(0.01)
        engine.send("announcer", "start", None)

    async def main() -> None:
        await asyncio.gather(
            engine.execute_workflow_async("waiter", execution_id="waiter"),
            engine.execute_workflow_async("announcer", execution_id="announcer"),
            operator(),
        )

    asyncio.run(main())
    assert engine.get_execution("waiter").result == ["approved", "yes"]
    assert engine.events("waiter") == {"got": "approved"}
    assert [m["topic"] for m in engine._messages.pending("waiter")] == ["reply"]
    assert [s.kind for s in engine.get_execution("waiter").steps] == [
        "sleep",
        "recv",
        "event",
        "event",
    ]


def test_waits_wake_at_once_at_a_change_made_elsewhere_on_postgresql(
    tmp_path: Path, pg_db: str
) -> None:
    """Two engines on one catalog, whose only path to each other is PostgreSQL's NOTIFY, and
    an hour between polls: every wait here ends only because a notification came."""
    with new_engine(tmp_path, pg_db) as here, new_engine(tmp_path, pg_db) as there:
        for engine in (here, there):
            engine.poll_interval = 3600
            engine.queue("work")
            engine.workflow("answer")(functools.partial(engine.recv, "go", timeout=600))
        worker = Worker(here, concurrency=1)
        idle = threading.Thread(target=worker.run)
        idle.start()
        try:
            began = time.monotonic()
            handle = there.queues["work"].enqueue("answer", execution_id="answer")  # wakes it
            _until(lambda: _steps_of(there, "answer") == [("recv", "started")], "it waits")
            there.send("answer", "go", "yes")  # wakes the recv of the worker
            assert handle.get_result(timeout=600) == "yes"  # woken when the execution ends
            assert time.monotonic() - began < 120  # generous; a poll would take an hour
        finally:
            worker.stop()
            idle.join(timeout=60)


def test_a_stopping_worker_hands_back_its_scheduled_runs_too(engine: AutomationEngine) -> None:
    release = threading.Event()

    @engine.step()
    def hold() -> None:
        release.wait(120)

    @engine.step()
    def then() -> None:
        pass

    @engine.scheduled("* * * * *", name="hourly-sweep")
    def sweep(slot: datetime) -> None:
        hold()
        then()

    worker = Worker(engine, drain_timeout=0)
    running = threading.Thread(target=worker.run)
    running.start()
    _until(lambda: bool(engine._running), "the slot runs")
    worker.stop()
    _until(lambda: worker.state == "handing-back", "the drain timed out")
    release.set()
    running.join(timeout=60)
    assert worker.drained and worker.state == "stopped"
    (execution,) = engine.list_executions(workflow="hourly-sweep")
    assert execution.status == "pending"  # handed back before its next step
    assert _steps_of(engine, execution.id) == [("step", "succeeded")]


def _steps_of(engine: AutomationEngine, execution_id: str) -> list[tuple[str, str]]:
    return [(s.kind, s.status) for s in engine.get_execution(execution_id).steps]


# -- several worker processes on one PostgreSQL catalog --------------------------------------


@pytest.fixture
def side(tmp_path: Path, pg_db: str) -> dict[str, str]:
    """The environment of worker processes on the catalog ``pg_db``, with the side tables."""
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(SIDE_TABLES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env.update(
        WARROOM_CATALOG_URL=pg_db,
        CHECKPOINT_DIR=str(tmp_path / "cp"),
        WARROOM_WORKFLOW_LEASE_SECONDS="30",
        SIDE_DB=pg_db,
        STEP_LOG=str(tmp_path / "steps.log"),
        RELEASE=str(tmp_path / "release"),
        PYTHONPATH=str(ROOT),
    )
    return env


@pytest.fixture
def app(side: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[AutomationEngine]:
    """``tests.queue_app``'s engine in this process (to enqueue and read), on the catalog."""
    for key in ("WARROOM_CATALOG_URL", "CHECKPOINT_DIR", "SIDE_DB", "STEP_LOG", "RELEASE"):
        monkeypatch.setenv(key, side[key])
    sys.modules.pop("tests.queue_app", None)
    engine: AutomationEngine = importlib.import_module("tests.queue_app").engine
    yield engine
    engine.close()
    sys.modules.pop("tests.queue_app", None)


def _worker(env: dict[str, str], *args: str, fault: str | None = None) -> subprocess.Popen[str]:
    extra = {"WARROOM_FAULT_POINT": fault} if fault else {}
    return subprocess.Popen(
        [sys.executable, "-m", "warroom", "worker", "--app", APP, *args],
        env={**env, **extra},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(*workers: subprocess.Popen[str]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err


def _rows(db: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db, autocommit=True) as conn:
        return conn.execute(query).fetchall()


def _until(condition: Callable[[], bool], what: str) -> None:
    pause = threading.Event()
    for _ in range(1200):
        if condition():
            return
        pause.wait(0.05)
    raise AssertionError(f"never happened: {what}")


def test_workers_run_each_execution_once_within_the_global_limit(
    app: AutomationEngine, side: dict[str, str]
) -> None:
    handles = [
        app.queues["jobs"].enqueue("job", f"k{n}", execution_id=f"job-{n}") for n in range(24)
    ]
    workers = [_worker(side, "--queue", "jobs", "--concurrency", "3") for _ in range(3)]
    try:
        assert [h.get_result(timeout=120) for h in handles] == [f"k{n}" for n in range(24)]
    finally:
        _stop(*workers)
    effects = _rows(side["SIDE_DB"], "SELECT key, pid, concurrent FROM effects")
    assert len(effects) == 48  # enter and leave of each, once: the keys are unique
    assert max(concurrent for _, _, concurrent in effects) <= 2  # the queue's concurrency
    assert all(app.get_execution(h.execution_id).runs == 1 for h in handles)
    states = {w.state for w in list_workers(app.catalog, 30)}
    assert states == {"stopped"}


def test_a_killed_workers_executions_are_taken_over(
    app: AutomationEngine, side: dict[str, str], pg_db: str
) -> None:
    handles = [app.queues["work"].enqueue("job", f"w{n}", execution_id=f"w-{n}") for n in range(6)]
    doomed = _worker(side, "--queue", "work", fault="leave-w2")  # killed after w2's first step
    doomed.communicate(timeout=120)
    assert doomed.returncode == -9
    assert app.get_execution("w-2").status == "running"  # still held by the dead worker
    expire_leases(pg_db)
    rescuer = _worker(side, "--queue", "work")
    try:
        assert [h.get_result(timeout=120) for h in handles] == [f"w{n}" for n in range(6)]
    finally:
        _stop(rescuer)
    keys = [key for (key,) in _rows(pg_db, "SELECT key FROM effects")]
    assert sorted(keys) == sorted(f"{s}:w{n}" for n in range(6) for s in ("enter", "leave"))
    assert app.get_execution("w-2").runs == 2


def _worker_shows(app: AutomationEngine, state: str) -> None:
    _until(
        lambda: any(w.state == state for w in list_workers(app.catalog, 30)),
        f"the worker shows it is {state}",
    )


def test_sigterm_drains_what_the_worker_holds(app: AutomationEngine, side: dict[str, str]) -> None:
    handle = app.queues["work"].enqueue("blocker", execution_id="held")
    first = _worker(side, "--queue", "work", "--drain-timeout", "600")
    log = Path(side["STEP_LOG"])
    _until(lambda: log.exists() and "wait-start" in log.read_text(), "the step started")
    first.send_signal(signal.SIGTERM)
    _worker_shows(app, "draining")
    Path(side["RELEASE"]).touch()  # within the drain timeout: the execution runs to its end
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert handle.get_result(timeout=0) == "done"
    ran = [line.split() for line in log.read_text().splitlines()]
    assert ran == [[word, str(first.pid)] for word in ("wait-start", "wait-done", "after")]
    assert [w.state for w in list_workers(app.catalog, 30)] == ["stopped"]


def test_sigterm_hands_back_at_the_next_step_after_the_drain_timeout(
    app: AutomationEngine, side: dict[str, str]
) -> None:
    handle = app.queues["work"].enqueue("blocker", execution_id="held")
    first = _worker(side, "--queue", "work", "--drain-timeout", "0")
    log = Path(side["STEP_LOG"])
    _until(lambda: log.exists() and "wait-start" in log.read_text(), "the step started")
    first.send_signal(signal.SIGTERM)
    _worker_shows(app, "handing-back")  # the drain timed out with the step still running
    Path(side["RELEASE"]).touch()  # the running step finishes and is recorded
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert handle.status == "enqueued"  # handed back before its next step
    second = _worker(side, "--queue", "work")
    try:
        assert handle.get_result(timeout=60) == "done"
    finally:
        _stop(second)
    ran = [line.split() for line in log.read_text().splitlines()]
    assert [word for word, _ in ran] == ["wait-start", "wait-done", "after"]
    assert ran[0][1] == str(first.pid) and ran[2][1] == str(second.pid)


def _move_into_the_past(app: AutomationEngine, pg_db: str, execution_id: str) -> None:
    """Move the clock: the time that step 0 of ``execution_id`` recorded (a wake time, a
    deadline) is now a second ago."""
    with closing(open_catalog(pg_db)) as catalog, catalog.transaction() as conn:
        conn.execute(
            update(workflow_steps)
            .where(workflow_steps.c.execution_id == execution_id, workflow_steps.c.number == 0)
            .values(result=app._values.dump(datetime.now(UTC) - timedelta(seconds=1)))
        )


def test_sleep_survives_a_restart(app: AutomationEngine, side: dict[str, str], pg_db: str) -> None:
    handle = app.queues["work"].enqueue("sleeper", 3600.0, execution_id="sleepy")
    first = _worker(side, "--queue", "work")
    _until(lambda: len(app.get_execution("sleepy").steps) == 1, "the wake time recorded")
    first.kill()
    first.communicate(timeout=60)
    wake = app.checkpoints("sleepy")[0][1]
    # The recorded wake time is now a second in the past.
    _move_into_the_past(app, pg_db, "sleepy")
    expire_leases(pg_db)
    second = _worker(side, "--queue", "work")
    try:
        assert handle.get_result(timeout=60) == "woke"  # it slept only what was left: nothing
    finally:
        _stop(second)
    assert wake > datetime.now(UTC) + timedelta(minutes=50)
    assert [s.kind for s in app.get_execution("sleepy").steps] == ["sleep", "step"]


def test_a_resumed_recv_waits_only_until_its_recorded_deadline(
    app: AutomationEngine, side: dict[str, str], pg_db: str
) -> None:
    handle = app.queues["work"].enqueue("waiter", 600.0, execution_id="waiting")
    first = _worker(side, "--queue", "work")
    _until(lambda: len(app.get_execution("waiting").steps) == 1, "the deadline recorded")
    first.kill()  # SIGKILL in the middle of the wait
    first.communicate(timeout=60)
    (step,) = app.get_execution("waiting").steps
    deadline = app.checkpoints("waiting")[0][1]
    assert (step.kind, step.status) == ("recv", "started")
    assert deadline > datetime.now(UTC) + timedelta(minutes=9)
    # The recorded deadline passed while no worker ran the execution.
    _move_into_the_past(app, pg_db, "waiting")
    expire_leases(pg_db)
    began = time.monotonic()
    second = _worker(side, "--queue", "work")
    try:
        assert handle.get_result(timeout=300) is None  # timed out at once, not 600 s later
    finally:
        _stop(second)
    assert time.monotonic() - began < 120  # generous: a worker's start, not the timeout
    steps = app.get_execution("waiting").steps
    assert [(s.kind, s.status) for s in steps] == [("recv", "succeeded"), ("step", "succeeded")]


def test_a_replayed_enqueue_or_start_makes_no_second_execution(
    app: AutomationEngine, side: dict[str, str], pg_db: str
) -> None:
    parent = app.queues["work"].enqueue("spawner", execution_id="spawner")
    doomed = _worker(side, "--queue", "work", fault="spawned")  # killed after both started
    doomed.communicate(timeout=120)
    assert doomed.returncode == -9
    recorded = [(s.name, s.kind) for s in app.get_execution("spawner").steps]
    assert recorded == [("enqueue:job", "enqueue"), ("start:blocker", "start")]
    expire_leases(pg_db)
    Path(side["RELEASE"]).touch()
    rescuer = _worker(side, "--queue", "work")
    try:
        queued, started = parent.get_result(timeout=120)
        assert app.start_workflow("job", "spawned", execution_id=queued).get_result(60) == "spawned"
        assert started == "spawner:1"  # the derived id: <parent id>:<step number>
        assert app.start_workflow("blocker", execution_id=started).get_result(60) == "done"
    finally:
        _stop(rescuer)
    assert [e.id for e in app.list_executions(workflow="job")] == [queued]
    assert [e.id for e in app.list_executions(workflow="blocker")] == [started]
    assert app.get_execution("spawner").runs == 2


def test_approval_start_and_fork_over_the_api_across_processes(
    app: AutomationEngine, side: dict[str, str], tmp_path: Path, pg_db: str
) -> None:
    worker = _worker(side, "--queue", "work")
    env = {**side, "WARROOM_APP": APP, "BACKUP_DIR": str(tmp_path / "backups")}
    _, token = TokenStore(app.catalog).create("approver", "operator")
    _, viewer = TokenStore(app.catalog).create("viewer", "viewer")
    try:
        with running_server(env, tmp_path) as server, server.client(token) as client:
            started = client.post(
                "/api/v1/workflows/approval/start",
                json={"args": ["deploy v42"], "execution_id": "change-42", "queue": "work"},
            )
            assert started.status_code == 202, started.text
            assert started.json()["execution_id"] == "change-42"
            assert app.get_event("change-42", "status", timeout=60) == "waiting"
            body = {"topic": "approval", "value": "approved", "idempotency_key": "alice-1"}
            url = "/api/v1/workflows/executions/change-42/messages"
            for _ in range(2):  # a retried request delivers once
                answer = client.post(url, json=body)
                assert answer.status_code == 202, answer.text
            handle = app.start_workflow("approval", "deploy v42", execution_id="change-42")
            assert handle.get_result(timeout=60) == "deploy v42: approved"
            events = client.get("/api/v1/workflows/executions/change-42/events")
            assert events.json() == {"execution_id": "change-42", "events": {"status": "approved"}}
            with server.client(viewer) as other:
                assert other.post(url, json=body).status_code == 403
            forked = client.post(
                "/api/v1/workflows/executions/change-42/fork", json={"from_step": 1}
            )
            assert forked.status_code == 202, forked.text
            fork_id = forked.json()["execution_id"]
            client.post(
                f"/api/v1/workflows/executions/{fork_id}/messages",
                json={"topic": "approval", "value": "rejected"},
            )
            assert (
                app.start_workflow("approval", "deploy v42", execution_id=fork_id).get_result(
                    timeout=60
                )
                == "deploy v42: rejected"
            )
            unknown = client.post("/api/v1/workflows/nope/start", json={})
            assert unknown.status_code == 404
    finally:
        _stop(worker)
    assert _rows(pg_db, "SELECT count(*) FROM warroom_workflow_messages") == [(2,)]


def test_a_scheduled_workflow_runs_once_per_slot_with_two_workers(
    app: AutomationEngine, side: dict[str, str], pg_db: str
) -> None:
    workers = [_worker(side, "--queue", "work") for _ in range(2)]
    try:
        _until(lambda: _rows(pg_db, "SELECT count(*) FROM slots") != [(0,)], "a slot ran")
        _until(
            lambda: sum(w.state == "running" for w in list_workers(app.catalog, 30)) == 2,
            "both workers ticked",
        )
    finally:
        _stop(*workers)
    slots = Counter(slot for slot, _ in _rows(pg_db, "SELECT slot, pid FROM slots"))
    assert slots and set(slots.values()) == {1}


def test_the_service_and_a_worker_run_each_slot_of_the_apps_schedule_once(
    app: AutomationEngine, side: dict[str, str], tmp_path: Path, pg_db: str
) -> None:
    env = {**side, "WARROOM_APP": APP, "BACKUP_DIR": str(tmp_path / "backups")}
    with running_server(env, tmp_path):
        _until(lambda: _rows(pg_db, "SELECT count(*) FROM slots") != [(0,)], "the service ran")
        worker = _worker(side, "--queue", "work")
        try:
            _until(
                lambda: any(w.state == "running" for w in list_workers(app.catalog, 30)),
                "the worker ticked the schedule too",
            )
        finally:
            _stop(worker)
    rows = _rows(pg_db, "SELECT slot, pid FROM slots ORDER BY slot")
    assert rows[0][1] != worker.pid  # the first slot ran in the service, alone then
    slots = Counter(slot for slot, _ in rows)
    assert set(slots.values()) == {1}
    (execution,) = app.list_executions(workflow="every_minute")[-1:]
    assert execution.status == "succeeded"
