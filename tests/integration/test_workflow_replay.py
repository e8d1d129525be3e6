"""Faithful replay (issue 15): recorded failures, call-order step numbers in threads and tasks,
typed values, async and child workflows, resumption by id, external executions' lifecycle,
leases on the catalog's clock. Every test runs on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import shutil
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, update

from tests.workflowtools import expire_leases, new_engine, worker_env
from warroom import AutomationEngine
from warroom.catalog import open_catalog
from warroom.catalog.schema import workflow_executions, workflow_steps
from warroom.errors import ConflictError, InputError, UnstorableValueError
from warroom.workflow.store import StepRow, WorkflowStore

ROOT = Path(__file__).resolve().parents[2]


class Calls(Counter[str]):
    """Side effects that prove which steps ran."""


@pytest.fixture
def engine(tmp_path: Path, catalog_url: str) -> Iterator[AutomationEngine]:
    with new_engine(tmp_path, catalog_url) as built:
        yield built


# -- 1. recorded failures --------------------------------------------------------------------


class CardDeclined(ValueError):
    def __init__(self, card: str, reason: str) -> None:
        super().__init__(card, reason)
        self.card = card


def test_a_handled_failure_is_replayed_not_run_again(engine: AutomationEngine) -> None:
    calls, ship_ok = Calls(), {"ok": False}

    @engine.step()
    def charge(card: str) -> str:
        calls["charge"] += 1
        if calls["charge"] == 1:
            raise CardDeclined(card, "insufficient funds")
        return "charged"  # would succeed if it ran again

    @engine.step()
    def refund(card: str) -> str:
        calls["refund"] += 1
        return "refunded"

    @engine.step()
    def ship() -> str:
        calls["ship"] += 1
        if not ship_ok["ok"]:
            raise ConnectionError("carrier down")
        return "shipped"

    @engine.workflow("order")
    def order(card: str) -> list[str]:
        try:
            outcome = charge(card)
        except ValueError as exc:  # the step's own type, not a wrapper
            assert isinstance(exc, CardDeclined) and exc.card == card
            outcome = refund(card)
        return [outcome, ship()]

    execution_id = engine.execute_workflow("order", "4242")
    failed = engine.get_execution(execution_id)
    assert failed.status == "failed" and "carrier down" in (failed.error or "")
    assert [(s.name, s.status) for s in failed.steps] == [
        ("charge", "failed"),
        ("refund", "succeeded"),
        ("ship", "failed"),
    ]
    assert "CardDeclined" in (failed.steps[0].error or "")
    ship_ok["ok"] = True
    engine.resume(execution_id)
    done = engine.get_execution(execution_id)
    assert done.status == "succeeded" and done.result == ["refunded", "shipped"]
    assert calls == {"charge": 1, "refund": 1, "ship": 2}


def test_a_replayed_failure_of_an_unloaded_class_is_a_step_failure(
    engine: AutomationEngine,
) -> None:
    from warroom import StepFailedError

    seen: list[BaseException] = []

    @engine.step()
    def flaky() -> None:
        raise KeyError("gone")

    @engine.step()
    def later() -> None:
        raise RuntimeError("stop")

    @engine.workflow("unloaded")
    def unloaded() -> None:
        try:
            flaky()
        except Exception as exc:  # noqa: BLE001 - records what replay raises
            seen.append(exc)
        later()

    execution_id = engine.execute_workflow("unloaded")
    with engine._catalog.transaction() as conn:  # as if written by a class not loaded here
        row = conn.execute(workflow_steps.select().where(workflow_steps.c.number == 0)).one()
        record = engine._values.load(row.result)
        record["type"] = "no_such_module:Gone"
        conn.execute(
            update(workflow_steps)
            .where(workflow_steps.c.number == 0)
            .values(result=engine._values.dump_record(record))
        )
    engine.resume(execution_id)
    assert type(seen[0]) is KeyError and type(seen[1]) is StepFailedError
    assert "no_such_module:Gone" in str(seen[1])
    assert "replayed from the record" in "".join(getattr(seen[1], "__notes__", []))


# -- 2. call order in threads ----------------------------------------------------------------


def test_map_runs_in_parallel_and_replays_each_call_its_own_result(
    engine: AutomationEngine,
) -> None:
    calls, gate, ok = Calls(), threading.Barrier(3, timeout=30), {"ok": False}

    @engine.step()
    def fetch(n: int) -> int:
        calls[f"fetch-{n}"] += 1
        if n < 3:
            gate.wait()  # three calls at once: they finish in any order
        return n * 10

    @engine.step()
    def publish(values: list[int]) -> list[int]:
        if not ok["ok"]:
            raise RuntimeError("not yet")
        return values

    @engine.workflow("fan")
    def fan() -> list[int]:
        return publish(engine.map(fetch, range(6), max_workers=3))

    execution_id = engine.execute_workflow("fan")
    steps = engine.get_execution(execution_id).steps
    assert [(s.number, s.name) for s in steps[:6]] == [(n, "fetch") for n in range(6)]
    ok["ok"] = True
    engine.resume(execution_id)
    assert engine.get_execution(execution_id).result == [0, 10, 20, 30, 40, 50]
    assert set(calls.values()) == {1}


def test_steps_from_threads_the_engine_did_not_start_are_refused(
    engine: AutomationEngine,
) -> None:
    @engine.step()
    def fetch(n: int) -> int:
        return n

    @engine.workflow("pool")
    def pool() -> list[int]:
        with ThreadPoolExecutor(2) as executor:
            return list(executor.map(fetch, range(4)))

    execution = engine.get_execution(engine.execute_workflow("pool"))
    assert execution.status == "failed"
    assert "thread this engine did not start" in (execution.error or "")
    assert "engine.map" in (execution.error or "")


def test_a_crash_in_the_middle_of_a_fan_out_resumes(tmp_path: Path, catalog_url: str) -> None:
    env = worker_env(tmp_path, catalog_url, 30)
    crashing = _worker({**env, "WARROOM_FAULT_POINT": "fanout-3"}, "fanout", "exec-fan")
    crashing.communicate(timeout=60)
    assert crashing.returncode == -9
    with closing(open_catalog(catalog_url)) as catalog:
        recorded = {s.number for s in WorkflowStore(catalog).load_steps("exec-fan").values()}
    assert 3 not in recorded
    expire_leases(catalog_url)
    rescuer = _worker(env, "recover")
    out, err = rescuer.communicate(timeout=60)
    assert rescuer.returncode == 0, err
    assert out.strip() == "exec-fan"
    ran = Counter((tmp_path / "steps.log").read_text().split()[::2])
    assert ran["item-3"] == 2  # killed in it, then run by the rescuer
    assert all(ran[f"item-{n}"] == 1 for n in recorded)  # recorded before the crash: once
    assert all(ran[f"item-{n}"] in (1, 2) for n in range(6))
    with new_engine(tmp_path, catalog_url) as engine:
        assert engine.get_execution("exec-fan").result == [n * n for n in range(6)]


# -- 3. types --------------------------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    BLUE = 2


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    label: str = "p"
    tags: tuple[str, ...] = ()


class Invoice(pydantic.BaseModel):
    number: int
    total: Decimal
    due: date
    lines: list[Point] = []


RICH = {
    42: "alice",
    (1, "a"): {"tuple", "keys"},
    "tuple": (1, (2, 3)),
    "frozen": frozenset({1, 2}),
    "when": datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York")),
    "utc": datetime(2026, 1, 1, tzinfo=UTC),
    "naive": datetime(2026, 1, 1, 12, 0, 0, 5),
    "offset": time(9, 30, tzinfo=timezone(timedelta(hours=-3), "BRT")),
    "day": date(2026, 2, 28),
    "span": timedelta(days=-1, seconds=5, microseconds=7),
    "money": Decimal("10.50"),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "raw": b"\x00\xff",
    "colour": Colour.BLUE,
    "point": Point(1, tags=("a",)),
    "invoice": Invoice(number=7, total=Decimal("1.10"), due=date(2026, 3, 1), lines=[Point(2)]),
    "big": 2**80,
}


def test_replay_keeps_types(tmp_path: Path, catalog_url: str) -> None:
    seen: list[Any] = []
    crash = {"on": True}
    with new_engine(tmp_path, catalog_url, allowed_types=[Colour, Point, Invoice]) as engine:

        @engine.step()
        def load() -> dict[Any, Any]:
            return RICH

        @engine.step()
        def fail_once() -> None:
            if crash["on"]:
                raise RuntimeError("crash")

        @engine.workflow("rich")
        def rich() -> Any:
            value = load()
            seen.append(value)
            fail_once()
            return value

        execution_id = engine.execute_workflow("rich")
        crash["on"] = False
        engine.resume(execution_id)
        assert seen[1] is not RICH and _same(seen[1], RICH)
        assert engine.get_execution(execution_id).result == RICH


def test_what_cannot_be_stored_is_refused_and_not_run_again(engine: AutomationEngine) -> None:
    calls = Calls()

    @engine.step()
    def send_email() -> object:
        calls["send_email"] += 1
        return object()

    @engine.step(idempotent=True)
    def lookup() -> object:
        calls["lookup"] += 1
        return Point(1)  # not on the allow-list

    @engine.workflow("unstorable")
    def unstorable(which: str) -> None:
        try:
            send_email() if which == "email" else lookup()
        except UnstorableValueError:
            calls["handled"] += 1
            raise

    first = engine.execute_workflow("unstorable", "email")
    execution = engine.get_execution(first)
    assert execution.status == "failed" and "cannot be stored" in (execution.error or "")
    assert execution.steps[0].status == "failed"
    engine.resume(first)  # the email went out: replay the failure, do not send it again
    assert calls["send_email"] == 1 and calls["handled"] == 2
    second = engine.execute_workflow("unstorable", "lookup")
    assert "allow-list" in (engine.get_execution(second).error or "")
    engine.resume(second)  # idempotent: run again
    assert calls["lookup"] == 2


def test_states_written_as_json_still_read(engine: AutomationEngine) -> None:
    now = datetime.now(UTC)
    with engine._catalog.transaction() as conn:
        conn.execute(
            insert(workflow_executions).values(
                id="old",
                workflow="legacy",
                status="failed",
                inputs=b'j[["x"],{}]',
                runs=1,
                cancel_requested=False,
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            insert(workflow_steps).values(
                execution_id="old",
                number=0,
                name="fetch",
                kind="step",
                status="succeeded",
                result=b'j{"rows":[1,2]}',
                attempts=1,
            )
        )

    @engine.step()
    def fetch(day: str) -> dict[str, Any]:
        raise AssertionError("recorded: must not run")

    @engine.workflow("legacy")
    def legacy(day: str) -> int:
        return len(fetch(day)["rows"])

    engine.resume("old")
    assert engine.get_execution("old").result == 2


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=40)
    | st.decimals(allow_nan=False)
    | st.uuids()
    | st.dates()
    | st.datetimes(timezones=st.none() | st.timezones())
    | st.times(timezones=st.none() | st.just(UTC) | st.timezones())
    | st.timedeltas()
    | st.sampled_from(Colour)
)
HASHABLE = st.recursive(SCALARS, lambda inner: st.tuples(inner, inner) | st.frozensets(inner))
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.sets(HASHABLE, max_size=3)
        | st.dictionaries(st.text(), inner, max_size=4)
        | st.dictionaries(HASHABLE, inner, max_size=4)
        | st.builds(Point, st.integers(), st.text(), st.tuples(st.text()))
        | st.builds(
            Invoice,
            number=st.integers(-(2**63), 2**63 - 1),
            total=st.decimals(allow_nan=False, allow_infinity=False),
            due=st.dates(),
        )
    ),
    max_leaves=12,
)


# Hypothesis describes a strategy that retried a draw (the sets' uniqueness) in its statistics,
# and newer releases warn that this one's description is large: a note about its own output.
@pytest.mark.filterwarnings(
    "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"
)
@settings(  # derandomized: the same 60 examples every run, so a run never fails by chance
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=VALUES)
def test_any_supported_value_survives_record_and_replay(
    value: Any, typed_engine: AutomationEngine
) -> None:
    """One engine for all examples (the fixture is not reset between them, as intended)."""
    engine, store = typed_engine, typed_engine._store
    execution_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    store.create_execution(execution_id, "property", engine._values.dump(None), now)
    step = StepRow(
        0, "s", "step", "succeeded", engine._values.dump(value), None, 1, now, now, 0.0, None
    )
    assert store.record_step(execution_id, None, step)
    replayed = engine._values.load(store.load_steps(execution_id)[0].result)
    assert _same(replayed, value)


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (time zones and folds included)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return len(a) == len(b) and all(_same_in(k, b) and _same(v, b[k]) for k, v in a.items())
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, set | frozenset):
        return len(a) == len(b) and all(_same_in(x, b) for x in a)
    if isinstance(a, datetime | time):
        return a == b and a.tzinfo == b.tzinfo and a.fold == b.fold
    if dataclasses.is_dataclass(a) or isinstance(a, pydantic.BaseModel):
        return _same(vars(a), vars(b))
    return bool(a == b)


def _same_in(x: Any, collection: Any) -> bool:
    return any(_same(x, y) for y in collection if y == x)


@pytest.fixture
def typed_engine(tmp_path: Path, catalog_url: str) -> Iterator[AutomationEngine]:
    with new_engine(tmp_path, catalog_url, allowed_types=[Colour, Point, Invoice]) as engine:
        yield engine


# -- 4. async ----------------------------------------------------------------------------------


def test_async_workflows_gather_steps_in_call_order(engine: AutomationEngine) -> None:
    calls, ok = Calls(), {"ok": False}

    @engine.step()
    async def fetch(n: int) -> int:
        calls[f"fetch-{n}"] += 1
        await asyncio.sleep(0)  # let the others run: they finish in any order
        return n * 10

    @engine.step()
    def publish(values: list[int]) -> list[int]:
        if not ok["ok"]:
            raise RuntimeError("not yet")
        return values

    @engine.workflow("gather")
    async def gather() -> list[int]:
        values = await asyncio.gather(*(fetch(n) for n in range(5)))
        return publish(list(values))

    execution_id = asyncio.run(engine.execute_workflow_async("gather"))
    assert [s.name for s in engine.get_execution(execution_id).steps][:5] == ["fetch"] * 5
    ok["ok"] = True
    asyncio.run(engine.resume_async(execution_id))
    assert engine.get_execution(execution_id).result == [0, 10, 20, 30, 40]
    assert set(calls.values()) == {1}
    again = engine.execute_workflow("gather")  # the sync twin runs async workflows too
    assert engine.get_execution(again).result == [0, 10, 20, 30, 40]


# -- 5. children -----------------------------------------------------------------------------


def test_a_child_workflow_is_a_step_of_its_parent(engine: AutomationEngine) -> None:
    calls, ok = Calls(), {"ok": False}

    @engine.step()
    def child_work(n: int) -> int:
        calls["child_work"] += 1
        if not ok["ok"]:
            raise ConnectionError("down")
        return n + 1

    @engine.workflow("child")
    def child(n: int) -> int:
        calls["child"] += 1
        return child_work(n)

    @engine.workflow("parent")
    def parent() -> int:
        try:
            return child(1)
        except ConnectionError:
            calls["parent-saw"] += 1
            raise

    parent_id = engine.execute_workflow("parent", execution_id="p-1")
    assert calls["parent-saw"] == 1
    assert engine.get_execution("p-1").status == "failed"
    assert engine.get_execution("p-1:0").status == "failed"  # the child, by a derived id
    assert [(s.name, s.kind) for s in engine.get_execution("p-1").steps] == [
        ("workflow:child", "workflow")
    ]
    ok["ok"] = True
    engine.resume(parent_id)
    assert engine.get_execution("p-1").result == 2
    assert engine.get_execution("p-1:0").status == "succeeded"
    assert calls["child_work"] == 2


# -- 6. execute_workflow by id ---------------------------------------------------------------


def test_execute_workflow_with_an_existing_id(engine: AutomationEngine) -> None:
    calls, ok = Calls(), {"ok": False}

    @engine.step()
    def work(n: int) -> int:
        calls["work"] += 1
        if not ok["ok"]:
            raise RuntimeError("not yet")
        return n

    @engine.workflow("job")
    def job(n: int) -> int:
        return work(n)

    @engine.workflow("other")
    def other(n: int) -> int:
        return n

    engine.execute_workflow("job", 1, execution_id="job-1")
    ok["ok"] = True
    engine.execute_workflow("job", 1, execution_id="job-1", resume_failed=False)
    assert engine.get_execution("job-1").status == "failed"
    engine.execute_workflow("job", 1, execution_id="job-1")  # failed: resumed
    assert engine.get_execution("job-1").result == 1 and calls["work"] == 2
    engine.execute_workflow("job", 1, execution_id="job-1")  # succeeded: left as it is
    assert calls["work"] == 2
    with pytest.raises(ConflictError, match=r"'job' with arguments \[\[1\], \{\}\].*\[\[2\]"):
        engine.execute_workflow("job", 2, execution_id="job-1")
    with pytest.raises(ConflictError, match="workflow 'job'.*workflow 'other'"):
        engine.execute_workflow("other", 1, execution_id="job-1")


# -- 7. external executions ------------------------------------------------------------------


def test_external_executions_end(engine: AutomationEngine) -> None:
    for execution_id in ("ext-ok", "ext-bad", "ext-stop"):
        engine.record_checkpoint(execution_id, "download", {"files": 3})
    assert engine.finish_external("ext-ok", "succeeded", {"rows": 9}).result == {"rows": 9}
    assert engine.finish_external("ext-bad", "failed", error="disk full").error == "disk full"
    assert engine.cancel("ext-stop") == "cancelled"
    assert [engine.get_execution(e).status for e in ("ext-ok", "ext-bad", "ext-stop")] == [
        "succeeded",
        "failed",
        "cancelled",
    ]
    with pytest.raises(ConflictError, match="succeeded already"):
        engine.finish_external("ext-ok", "failed", error="late")
    with pytest.raises(ConflictError, match="no more checkpoints"):
        engine.record_checkpoint("ext-ok", "upload", {"files": 3})


def test_concurrent_external_writers_are_never_refused(engine: AutomationEngine) -> None:
    def writer(w: int) -> None:
        for i in range(25):
            engine.record_checkpoint("ext-busy", f"w{w}-{i}", {"w": w, "i": i})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(writer, range(8)))  # a refusal would raise here
    recorded = engine.checkpoints("ext-busy")
    assert [info.number for info, _ in recorded] == list(range(200))
    assert len({info.name for info, _ in recorded}) == 200


# -- 8. leases on the catalog's clock --------------------------------------------------------


def test_a_worker_whose_clock_runs_ahead_cannot_take_over(tmp_path: Path, catalog_url: str) -> None:
    env = worker_env(tmp_path, catalog_url, 30)
    holder = _worker(env, "run", "exec-live")
    _wait_for_log(tmp_path, "slow-start")
    ahead = datetime.now(UTC) + timedelta(seconds=35)
    with new_engine(tmp_path, catalog_url, clock=lambda: ahead, lease_seconds=30) as skewed:

        @skewed.workflow("report")
        def report(day: str) -> str:
            raise AssertionError("must not run")

        assert skewed.recover() == []
        with pytest.raises(ConflictError, match="being run by another worker"):
            skewed.resume("exec-live")
    if catalog_url.startswith("postgresql") and shutil.which("faketime"):
        # A whole process 35 s ahead (SQLite reads 'now' from the process's own clock, so a
        # faked process clock is believed there: see warroom.workflow.store).
        faked = _worker(env, "recover", faketime="+35s")
        assert faked.communicate(timeout=60)[0].strip() == ""
    (tmp_path / "release").touch()
    holder.communicate(timeout=60)
    assert holder.returncode == 0
    assert Counter((tmp_path / "steps.log").read_text().split()[::2])["slow-start"] == 1


# -- 9. SQLite durability --------------------------------------------------------------------


def test_sqlite_commits_are_durable_by_default(tmp_path: Path) -> None:
    def synchronous(url: str) -> int:
        with closing(open_catalog(url)) as catalog, catalog.transaction() as conn:
            return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())

    assert synchronous(f"sqlite:///{tmp_path}/a.db") == 2  # FULL
    assert synchronous(f"sqlite:///{tmp_path}/a.db?synchronous=normal") == 1
    with pytest.raises(InputError, match="synchronous"):
        open_catalog(f"sqlite:///{tmp_path}/a.db?synchronous=sometimes")


# -- helpers ---------------------------------------------------------------------------------


def _worker(env: dict[str, str], *args: str, faketime: str | None = None) -> subprocess.Popen[str]:
    prefix = ["faketime", "-f", faketime] if faketime else []
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "tests.workflow_worker", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_log(tmp_path: Path, word: str) -> None:
    path, done = tmp_path / "steps.log", threading.Event()
    for _ in range(600):
        if path.exists() and word in path.read_text().split():
            return
        done.wait(0.05)
    raise AssertionError(f"{word!r} never logged")
