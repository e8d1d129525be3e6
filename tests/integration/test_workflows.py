"""The durable automation engine, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from tests.workflowtools import expire_leases, worker_env
from warroom import AutomationEngine, StepMismatchError
from warroom.catalog.schema import workflow_executions, workflow_steps
from warroom.config import Settings
from warroom.errors import ConflictError, InputError, IntegrityError, NotFoundError
from warroom.repository.layout import BLOBS_PREFIX
from warroom.storage.local import LocalStorage

ROOT = Path(__file__).resolve().parents[2]


def _settings(tmp_path: Path, catalog_url: str, **extra: object) -> Settings:
    return Settings(catalog_url=catalog_url, checkpoint_dir=tmp_path / "checkpoints", **extra)  # type: ignore[arg-type]


@pytest.fixture
def engine(tmp_path: Path, catalog_url: str) -> Iterator[AutomationEngine]:
    with AutomationEngine(settings=_settings(tmp_path, catalog_url)) as built:
        yield built


class Calls:
    """Side effects that prove which steps ran."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, name: str) -> None:
        self.counts[name] += 1


def test_failed_step_resumes_without_rerunning_finished_steps(
    engine: AutomationEngine, tmp_path: Path
) -> None:
    calls, flaky_ok = Calls(), tmp_path / "flaky-ok"

    @engine.step()
    def extract(day: str) -> list[dict[str, int]]:
        calls("extract")
        return [{"n": 1}, {"n": 2}]

    @engine.step(retries=2, backoff=2.0, retry_delay=0.01)
    def summarise(rows: list[dict[str, int]]) -> dict[str, int]:
        calls("summarise")
        if not flaky_ok.exists():
            raise ConnectionError("warehouse unavailable")
        return {"total": sum(r["n"] for r in rows)}

    @engine.step(critical=True)
    def publish(report: dict[str, int]) -> None:
        calls("publish")

    @engine.workflow("nightly-report")
    def nightly_report(day: str) -> dict[str, int]:
        rows = extract(day)
        report = summarise(rows)
        publish(report)
        return report

    execution_id = engine.execute_workflow("nightly-report", day="2026-11-26")
    failed = engine.get_execution(execution_id)
    assert failed.status == "failed" and "warehouse unavailable" in (failed.error or "")
    assert calls.counts == {"extract": 1, "summarise": 3}  # 1 attempt + 2 retries
    assert [(s.name, s.status, s.attempts) for s in failed.steps] == [
        ("extract", "succeeded", 1),
        ("summarise", "failed", 3),
    ]

    flaky_ok.touch()
    assert engine.resume(execution_id) == execution_id
    done = engine.get_execution(execution_id)
    assert done.status == "succeeded" and done.result == {"total": 3} and done.runs == 2
    assert calls.counts == {"extract": 1, "summarise": 4, "publish": 1}
    assert [s.name for s in done.steps] == ["extract", "summarise", "publish"]
    assert all(s.started_at and s.finished_at for s in done.steps)

    engine.resume(execution_id)  # a finished execution is left as it is
    assert calls.counts["publish"] == 1


def test_execution_ids_are_idempotent(engine: AutomationEngine) -> None:
    calls = Calls()

    @engine.step()
    def work() -> int:
        calls("work")
        return 7

    @engine.workflow("once")
    def once() -> int:
        return work()

    first = engine.execute_workflow("once", execution_id="deploy-42")
    second = engine.execute_workflow("once", execution_id="deploy-42")
    assert first == second == "deploy-42" and calls.counts["work"] == 1
    assert engine.get_execution("deploy-42").result == 7
    with pytest.raises(InputError, match="invalid execution id"):
        engine.execute_workflow("once", execution_id="../etc")
    with pytest.raises(NotFoundError, match="no workflow named 'nope'"):
        engine.execute_workflow("nope")


def test_step_mismatch_names_both_steps(engine: AutomationEngine, tmp_path: Path) -> None:
    version = {"code": 1}

    @engine.step()
    def old_step() -> int:
        return 1

    @engine.step()
    def new_step() -> int:
        return 2

    @engine.step()
    def breaks() -> None:
        if version["code"] == 1:
            raise RuntimeError("first run fails")

    @engine.workflow("changing")
    def changing() -> None:
        old_step() if version["code"] == 1 else new_step()
        breaks()

    execution_id = engine.execute_workflow("changing")
    version["code"] = 2
    engine.resume(execution_id)
    failed = engine.get_execution(execution_id)
    assert failed.status == "failed"
    assert "'old_step'" in (failed.error or "") and "'new_step'" in (failed.error or "")
    with pytest.raises(StepMismatchError):
        raise StepMismatchError("x")


def test_cancel_stops_before_the_next_step(engine: AutomationEngine) -> None:
    calls = Calls()
    holder: dict[str, str] = {}

    @engine.step()
    def first() -> None:
        calls("first")
        engine.cancel(holder["id"])

    @engine.step()
    def second() -> None:
        calls("second")

    @engine.workflow("cancellable")
    def cancellable() -> None:
        first()
        second()

    original_create = engine._store.create_execution

    def remember(execution_id: str, *args: object, **kwargs: object) -> bool:
        holder["id"] = execution_id
        return original_create(execution_id, *args, **kwargs)  # type: ignore[arg-type]

    engine._store.create_execution = remember  # type: ignore[method-assign]
    execution_id = engine.execute_workflow("cancellable")
    assert engine.get_execution(execution_id).status == "cancelled"
    assert calls.counts == {"first": 1}
    with pytest.raises(NotFoundError):
        engine.cancel("no-such-execution")


def test_cancel_from_another_thread_during_backoff(engine: AutomationEngine) -> None:
    """The backoff is an hour: only the cancellation can end this test before its timeout."""

    @engine.step(retries=50, retry_delay=3600, backoff=1.0)
    def never_works() -> None:
        [execution] = engine.list_executions()
        threading.Thread(target=engine.cancel, args=(execution.id,)).start()
        raise RuntimeError("down")

    @engine.workflow("retrying")
    def retrying() -> None:
        never_works()

    execution_id = engine.execute_workflow("retrying")
    assert engine.get_execution(execution_id).status == "cancelled"


def test_large_states_are_stored_once_as_blobs(tmp_path: Path, catalog_url: str) -> None:
    settings = _settings(tmp_path, catalog_url, workflow_blob_threshold=1024)
    with AutomationEngine(settings=settings) as engine:
        big = {"rows": ["x" * 100] * 500}

        @engine.step()
        def load() -> dict[str, list[str]]:
            return big

        @engine.workflow("big")
        def big_flow() -> int:
            return len(load()["rows"]) + len(load()["rows"])

        first = engine.execute_workflow("big")
        engine.execute_workflow("big")
        storage = LocalStorage(tmp_path / "checkpoints")
        blobs = list(storage.list(BLOBS_PREFIX))
        assert len(blobs) == 1 and blobs[0].size < 5000  # 4 identical states, 1 compressed blob
        execution = engine.get_execution(first)
        assert execution.result == 1000
        resumed_value = engine.checkpoints(first)[0][1]
        assert resumed_value == big


def test_pickle_is_opt_in_and_tampering_is_refused(tmp_path: Path, catalog_url: str) -> None:
    with pytest.raises(Exception, match="signing key"):
        AutomationEngine(settings=_settings(tmp_path, catalog_url, workflow_serializer="pickle"))
    settings = _settings(
        tmp_path, catalog_url, workflow_serializer="pickle", pickle_signing_key="k3y"
    )
    with AutomationEngine(settings=settings) as engine:

        @engine.step()
        def make() -> set[int]:
            return {1, 2, 3}  # not JSON: needs pickle

        @engine.step()
        def fail() -> None:
            raise RuntimeError("stop here")

        @engine.workflow("pickled")
        def pickled() -> None:
            make()
            fail()

        execution_id = engine.execute_workflow("pickled")
        evil = b"cos\nsystem\n(S'echo pwned'\ntR."
        forged = b"p" + hmac.new(b"wrong key", evil, hashlib.sha256).digest() + evil
        with engine._catalog.transaction() as conn:
            conn.execute(
                update(workflow_steps)
                .where(workflow_steps.c.execution_id == execution_id, workflow_steps.c.number == 0)
                .values(result=forged)
            )
        with pytest.raises(IntegrityError, match="signature"):
            engine.checkpoints(execution_id)
        engine.resume(execution_id)
        assert "signature" in (engine.get_execution(execution_id).error or "")


def test_the_default_serializer_refuses_objects(engine: AutomationEngine) -> None:
    @engine.step()
    def returns_object() -> object:
        return object()

    @engine.workflow("objects")
    def objects() -> None:
        returns_object()

    execution = engine.get_execution(engine.execute_workflow("objects"))
    assert execution.status == "failed" and "cannot be stored" in (execution.error or "")


def test_explicit_checkpoints_without_auto_checkpoints(tmp_path: Path, catalog_url: str) -> None:
    settings = _settings(tmp_path, catalog_url, enable_auto_checkpoints=False)
    crash = {"on": True}
    with AutomationEngine(settings=settings) as engine:
        calls = Calls()

        @engine.step()
        def batch(start: int) -> int:
            calls(f"batch-{start}")
            if start == 20 and crash["on"]:
                raise RuntimeError("crash")
            return start + 10

        @engine.workflow("cursor")
        def cursor() -> int:
            position = engine.checkpoint({"cursor": 0}, label="start")["cursor"]
            position = batch(position)
            position = engine.checkpoint({"cursor": position}, label="after-1")["cursor"]
            position = batch(position)
            position = batch(position)
            return position

        execution_id = engine.execute_workflow("cursor")
        assert [s.kind for s in engine.get_execution(execution_id).steps] == [
            "checkpoint",
            "checkpoint",
        ]
        crash["on"] = False
        engine.resume(execution_id)
        assert engine.get_execution(execution_id).result == 30
        # Without automatic checkpoints, steps run again; explicit states are replayed.
        assert calls.counts["batch-0"] == 2 and calls.counts["batch-20"] == 2


def test_external_checkpoints(engine: AutomationEngine) -> None:
    engine.record_checkpoint("ext-1", "download", {"files": 3}, {"host": "a"})
    engine.record_checkpoint("ext-1", "transform", {"rows": 10})
    engine.record_checkpoint("ext-1", "download", {"files": 3})  # the same again: no change
    with pytest.raises(ConflictError, match="different state"):
        engine.record_checkpoint("ext-1", "download", {"files": 4})
    with pytest.raises(ConflictError, match="run by this engine"):

        @engine.workflow("internal")
        def internal() -> None:
            pass

        engine.record_checkpoint(engine.execute_workflow("internal"), "injected", {"x": 1})
    recorded = engine.checkpoints("ext-1")
    assert [(info.number, info.name, state) for info, state in recorded] == [
        (0, "download", {"files": 3}),
        (1, "transform", {"rows": 10}),
    ]
    assert recorded[0][0].metadata == {"host": "a"}


def test_retention_removes_finished_and_abandoned_external_executions(
    tmp_path: Path, catalog_url: str
) -> None:
    """Succeeded, failed and cancelled executions go once older than the policy, and so do
    external executions left open; the engine's own running ones stay, whatever their age."""
    now = {"t": datetime(2026, 11, 1, tzinfo=UTC)}
    settings = _settings(tmp_path, catalog_url, workflow_blob_threshold=10)
    with AutomationEngine(settings=settings, clock=lambda: now["t"]) as engine:

        @engine.step()
        def ok() -> str:
            return "a fairly long result, stored as a blob"

        @engine.step()
        def bad() -> None:
            raise RuntimeError("no")

        @engine.workflow("good")
        def good() -> str:
            return ok()

        @engine.workflow("broken")
        def broken() -> None:
            bad()

        old_ok = engine.execute_workflow("good")
        old_failed = engine.execute_workflow("broken")
        engine.record_checkpoint("ext-abandoned", "step-1", {"done": 1})
        now["t"] += timedelta(days=10)
        engine.record_checkpoint("ext-active", "step-1", {"done": 1})
        recent = engine.execute_workflow("good", execution_id="recent")
        with engine._catalog.transaction() as conn:  # one left running by a dead worker
            conn.execute(
                update(workflow_executions)
                .where(workflow_executions.c.id == recent)
                .values(status="running")
            )
        now["t"] += timedelta(days=10)
        engine.record_checkpoint("ext-active", "step-2", {"done": 2})
        expected = {old_ok, old_failed, "ext-abandoned"}
        assert set(engine.expired_executions()) == expected
        assert set(engine.cleanup()) == expected  # CHECKPOINT_RETENTION_DAYS = 7
        remaining = {e.id for e in engine.list_executions()}
        assert remaining == {"ext-active", recent}
        assert engine.get_execution(recent).steps  # its checkpoints are kept too


def _worker(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.workflow_worker", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _log_lines(tmp_path: Path) -> list[str]:
    path = tmp_path / "steps.log"
    return path.read_text().split()[::2] if path.exists() else []


def _wait_for(predicate: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_worker_killed_mid_step_is_taken_over(tmp_path: Path, catalog_url: str) -> None:
    env = worker_env(tmp_path, catalog_url, 600)
    victim = _worker(env, "run", "exec-kill")
    _wait_for(lambda: "slow-start" in _log_lines(tmp_path))
    victim.kill()
    victim.communicate()
    (tmp_path / "release").touch()

    early = _worker(env, "recover")  # the lease has not expired yet: nothing to take
    assert early.communicate(timeout=60)[0].strip() == ""
    expire_leases(catalog_url)
    rescuer = _worker(env, "recover")
    out, err = rescuer.communicate(timeout=60)
    assert rescuer.returncode == 0, err
    assert out.strip() == "exec-kill"
    assert _log_lines(tmp_path) == ["fetch", "slow-start", "slow-start", "slow", "publish"]


def test_two_workers_never_run_one_execution(tmp_path: Path, catalog_url: str) -> None:
    env = worker_env(tmp_path, catalog_url, 600)
    first = _worker(env, "run", "exec-race")
    _wait_for(lambda: "slow-start" in _log_lines(tmp_path))
    racers = [_worker(env, "resume", "exec-race") for _ in range(2)]
    results = [racer.communicate(timeout=60) for racer in racers]
    for racer, (_, err) in zip(racers, results, strict=True):
        assert racer.returncode != 0 and "being run by another worker" in err
    (tmp_path / "release").touch()
    first.communicate(timeout=60)
    assert first.returncode == 0
    assert Counter(_log_lines(tmp_path)) == {"fetch": 1, "slow-start": 1, "slow": 1, "publish": 1}


def test_critical_step_is_checkpointed_before_it_runs(engine: AutomationEngine) -> None:
    seen: dict[str, object] = {}

    @engine.step(critical=True)
    def publish() -> str:
        [execution] = engine.list_executions()
        seen["steps"] = [(s.name, s.status) for s in engine.get_execution(execution.id).steps]
        return "published"

    @engine.workflow("critical")
    def critical() -> str:
        return publish()

    execution_id = engine.execute_workflow("critical")
    assert seen["steps"] == [("publish", "started")]
    assert [(s.name, s.status) for s in engine.get_execution(execution_id).steps] == [
        ("publish", "succeeded")
    ]


def test_step_timeout_counts_as_a_failed_attempt(engine: AutomationEngine) -> None:
    """The attempts wait for an event set only after the run: only the timeout ends them."""
    attempts, never = Calls(), threading.Event()

    @engine.step(timeout=0.2, retries=1, retry_delay=0.01)
    def hangs() -> None:
        attempts("hangs")
        never.wait()

    @engine.workflow("hanging")
    def hanging() -> None:
        hangs()

    execution = engine.get_execution(engine.execute_workflow("hanging"))
    never.set()
    assert execution.status == "failed" and "did not finish within 0.2 s" in (execution.error or "")
    assert attempts.counts["hangs"] == 2


def test_a_worker_that_lost_its_lease_records_nothing(engine: AutomationEngine) -> None:
    calls = Calls()

    @engine.step()
    def first() -> int:
        calls("first")
        return 1

    @engine.step()
    def taken_over() -> int:
        calls("taken_over")
        with engine._catalog.transaction() as conn:  # another worker claims the execution
            conn.execute(update(workflow_executions).values(lease_owner="other-worker"))
        return 2

    @engine.step()
    def never() -> None:
        calls("never")

    @engine.workflow("contested")
    def contested() -> None:
        first()
        taken_over()
        never()

    execution_id = engine.execute_workflow("contested")
    execution = engine.get_execution(execution_id)
    assert execution.status == "running"  # the new owner's to finish
    assert [s.name for s in execution.steps] == ["first"]
    assert calls.counts == {"first": 1, "taken_over": 1}


def test_resume_requested_through_the_api_is_picked_up_by_recover(
    engine: AutomationEngine, tmp_path: Path
) -> None:
    fixed = tmp_path / "fixed"

    @engine.step()
    def flaky() -> str:
        if not fixed.exists():
            raise RuntimeError("not yet")
        return "done"

    @engine.workflow("requested")
    def requested() -> str:
        return flaky()

    execution_id = engine.execute_workflow("requested")
    fixed.touch()
    assert engine.request_resume(execution_id).status == "pending"
    assert engine.recover() == [execution_id]
    assert engine.get_execution(execution_id).result == "done"
    with pytest.raises(ConflictError, match="only failed or cancelled"):
        engine.request_resume(execution_id)
