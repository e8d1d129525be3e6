"""Durable sleep, messages and events: the part of the engine a workflow waits in.

Each call inside a workflow is a step of the running execution. A wait that can last records
when it ends before it waits, on the engine's clock: ``sleep`` its wake time (its finished
step), ``recv`` and ``get_event`` their deadline (a ``started`` step, replaced by the outcome
when the wait ends). A resumed execution therefore waits only what is left, and times out at
once if the deadline passed while no worker ran it. A wait that finds what it waits for at
once records no deadline.

Every wait has an awaitable form for ``async def`` workflows (``sleep_async``, ``recv_async``,
``get_event_async``) that waits in an executor thread, never blocking the event loop. ``send``
and ``set_event`` never wait (one catalog write, like a step's checkpoint): async workflows
call them as they are.

``recv`` and ``get_event`` are written once, as generators that yield how many seconds to pause
before looking again (at most the engine's ``poll_interval``; a wakeup from
:mod:`warroom.workflow.wakeups`, on PostgreSQL a NOTIFY from any process, ends a pause
early); :func:`_pause` and :func:`_pause_async` drive them.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Generator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from warroom.errors import InputError
from warroom.workflow.messages import MessageStore
from warroom.workflow.store import STARTED, SUCCEEDED, ExecutionRow, StepRow
from warroom.workflow.values import ValueCodec
from warroom.workflow.wakeups import Wakeups

if TYPE_CHECKING:
    from warroom.workflow.engine import _Run

__all__ = ["LABEL", "DurableWaits"]

LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}$")  # topics, event and message keys

T = TypeVar("T")
Waiting = Generator[float, None, T]  # yields the seconds to pause for, returns the outcome


def check_label(what: str, label: str) -> str:
    if not LABEL.fullmatch(label):
        raise InputError(
            f"invalid {what} {label!r}: 1 to 200 characters, starting with a letter or digit, "
            "then letters, digits, '.', '_', ':', '@', '/' or '-'"
        )
    return label


def _check_timeout(timeout: float) -> float:
    if timeout < 0:
        raise InputError(f"timeout must be 0 seconds or more, not {timeout:g}")
    return timeout


class _Engine(Protocol):
    """What the waits use of the engine they are part of."""

    worker_id: str
    poll_interval: float
    _values: ValueCodec
    _messages: MessageStore
    wakeups: Wakeups
    _clock: Callable[[], datetime]

    def _calling_run(self, what: str, strict: bool = True) -> _Run | None: ...
    def _get_row(self, execution_id: str) -> ExecutionRow: ...
    def _recorded(self, run: _Run, number: int, name: str) -> StepRow | None: ...
    def _record(self, run: _Run, step: StepRow) -> None: ...
    def _once(self, run: _Run, name: str, kind: str, compute: Callable[[int], T]) -> T: ...


class DurableWaits:
    """Sleep, send/recv and events of :class:`~warroom.workflow.engine.AutomationEngine`."""

    # -- sleep ------------------------------------------------------------------------------

    def sleep(self: _Engine, seconds: float) -> None:
        """Sleep durably: inside a workflow the wake time is recorded (a step), so a resumed
        execution sleeps only what is left. A cancellation or a stopping worker cuts the
        sleep short and stops the execution there. Outside a workflow, an ordinary sleep."""
        run = self._calling_run("engine.sleep()")
        if run is None:
            time.sleep(seconds)
            return
        left = _time_to_wake(self, run, seconds)
        if left > 0:
            run.sleep(left)

    async def sleep_async(self: _Engine, seconds: float) -> None:
        """:meth:`sleep` for ``async def`` workflows, awaited without blocking the loop."""
        run = self._calling_run("engine.sleep_async()")
        if run is None:
            await asyncio.sleep(seconds)
            return
        left = _time_to_wake(self, run, seconds)
        if left > 0:
            await run.sleep_async(left)

    # -- messages ---------------------------------------------------------------------------

    def send(
        self: _Engine,
        execution_id: str,
        topic: str,
        value: Any,
        *,
        idempotency_key: str | None = None,
    ) -> str:
        """Send ``value`` to the execution ``execution_id`` under ``topic``; returns the
        message's key. Delivered once per key: inside a workflow the key is derived from the
        sender's id and step number (a replayed send delivers nothing more); elsewhere it is
        ``idempotency_key``, or a new one."""
        self._get_row(execution_id)
        check_label("topic", topic)
        stored = self._values.dump(value, "the message")

        def deliver(key: str) -> str:
            self._messages.send(execution_id, topic, check_label("key", key), stored, self._clock())
            self.wakeups.announce()
            return key

        run = self._calling_run("engine.send()", strict=False)
        if run is None:
            return deliver(idempotency_key or uuid.uuid4().hex)
        return self._once(
            run,
            f"send:{topic}",
            "send",
            lambda number: deliver(idempotency_key or f"{run.execution_id}:{number}"),
        )

    def recv(self: _Engine, topic: str, timeout: float = 60.0) -> Any:
        """Inside a workflow: the oldest message sent to this execution under ``topic``,
        waiting up to ``timeout`` seconds for one; None when none came. The message is
        consumed in the transaction that records this step, so it is received exactly once;
        a resumed execution gets it back from the record. The deadline is recorded: a wait
        cut short by a crash goes on, when the execution resumes, only until it."""
        return _pause(self, _receiving(self, topic, timeout, "engine.recv()"))

    async def recv_async(self: _Engine, topic: str, timeout: float = 60.0) -> Any:
        """:meth:`recv` for ``async def`` workflows, awaited without blocking the loop."""
        return await _pause_async(self, _receiving(self, topic, timeout, "engine.recv_async()"))

    # -- events -----------------------------------------------------------------------------

    def set_event(self: _Engine, key: str, value: Any) -> None:
        """Inside a workflow: publish ``value`` as this execution's event ``key`` (the latest
        value wins), for :meth:`get_event` and the API to read."""
        run = self._calling_run("engine.set_event()")
        if run is None:
            raise InputError("engine.set_event() publishes a workflow's event: call it inside one")
        stored = self._values.dump(value, f"event {check_label('key', key)!r}")

        def publish(_: int) -> None:
            self._messages.set_event(run.execution_id, key, stored, self._clock())
            self.wakeups.announce()

        self._once(run, f"event:{key}", "event", publish)

    def get_event(self: _Engine, execution_id: str, key: str, timeout: float = 60.0) -> Any:
        """The value of ``execution_id``'s event ``key``, waiting up to ``timeout`` seconds
        for it to be set; None if it was not. Inside a workflow the value read is recorded,
        and so is the deadline of the wait, as for :meth:`recv`."""
        return _pause(self, _reading_event(self, execution_id, key, timeout))

    async def get_event_async(
        self: _Engine, execution_id: str, key: str, timeout: float = 60.0
    ) -> Any:
        """:meth:`get_event`, awaited without blocking the loop."""
        return await _pause_async(self, _reading_event(self, execution_id, key, timeout))

    def events(self: _Engine, execution_id: str) -> dict[str, Any]:
        """Every event of an execution, key -> latest value."""
        self._get_row(execution_id)
        return {k: self._values.load(v) for k, v in self._messages.events(execution_id).items()}


# -- how the waits wait --------------------------------------------------------------------


def _time_to_wake(engine: _Engine, run: _Run, seconds: float) -> float:
    """Record (or, resumed, read) the wake time of a sleep; the seconds left until it."""
    wake = engine._once(
        run, "sleep", "sleep", lambda _: engine._clock() + timedelta(seconds=seconds)
    )
    return float((wake - engine._clock()).total_seconds())


def _receiving(engine: _Engine, topic: str, timeout: float, what: str) -> Waiting[Any]:
    run = engine._calling_run(what)
    if run is None:
        raise InputError(f"{what} waits for a message: call it inside a workflow")
    number, name = run.next_number(), f"recv:{check_label('topic', topic)}"
    _check_timeout(timeout)
    recorded = engine._recorded(run, number, name)
    if recorded is not None:
        return None if recorded.result is None else engine._values.load(recorded.result)
    started, until = engine._clock(), None
    while True:
        run.raise_if_stopped()
        now = engine._clock()
        duration = (now - started).total_seconds()
        step = StepRow(number, name, "recv", SUCCEEDED, None, None, 1, started, now, duration)
        received = engine._messages.receive(run.execution_id, engine.worker_id, topic, step)
        if received is None:
            run.lease_lost = True
            run.raise_if_stopped()
        if received and step.result is not None:
            run.steps[number] = step
            return engine._values.load(step.result)
        if until is None:
            until = _wait_until(engine, run, number, name, "recv", timeout)
        left = until - time.monotonic()
        if left <= 0:
            step.result = engine._values.dump(None)
            engine._record(run, step)
            return None
        yield min(left, engine.poll_interval)


def _reading_event(engine: _Engine, execution_id: str, key: str, timeout: float) -> Waiting[Any]:
    engine._get_row(execution_id)
    name, _ = f"get_event:{check_label('key', key)}", _check_timeout(timeout)
    run = engine._calling_run("engine.get_event()", strict=False)
    number = -1
    if run is not None:
        number = run.next_number()
        recorded = engine._recorded(run, number, name)
        if recorded is not None:
            return None if recorded.result is None else engine._values.load(recorded.result)
    started, until = engine._clock(), None
    while True:
        if run is not None:
            run.raise_if_stopped()
        found = engine._messages.events(execution_id, key).get(key)
        if found is not None:
            break
        if until is None:
            until = _wait_until(engine, run, number, name, "event", timeout)
        left = until - time.monotonic()
        if left <= 0:
            break
        yield min(left, engine.poll_interval)
    if run is not None:
        now = engine._clock()
        stored = found if found is not None else engine._values.dump(None)
        duration = (now - started).total_seconds()
        engine._record(
            run,
            StepRow(number, name, "event", SUCCEEDED, stored, None, 1, started, now, duration),
        )
    return None if found is None else engine._values.load(found)


def _wait_until(
    engine: _Engine, run: _Run | None, number: int, name: str, kind: str, timeout: float
) -> float:
    """When (on this process's monotonic clock) the wait step ``number`` times out: at the
    deadline an earlier run of the execution recorded, else ``timeout`` from now, recorded
    as the step, started. Outside a workflow (``run`` None), ``timeout`` from now."""
    if run is None:
        return time.monotonic() + timeout
    earlier = run.steps.get(number)
    if earlier is not None and earlier.status == STARTED and earlier.result is not None:
        deadline: datetime = engine._values.load(earlier.result)
    else:
        now = engine._clock()
        deadline = now + timedelta(seconds=timeout)
        if timeout > 0:
            stored = engine._values.dump(deadline)
            engine._record(run, StepRow(number, name, kind, STARTED, stored, None, 0, now))
    return time.monotonic() + max(0.0, (deadline - engine._clock()).total_seconds())


def _pause(engine: _Engine, waiting: Waiting[T]) -> T:
    """Run a wait in this thread, pausing as it asks; a wakeup (see
    :mod:`warroom.workflow.wakeups`) that came since it last looked ends a pause early."""
    try:
        token = engine.wakeups.token()
        seconds = next(waiting)
        while True:
            engine.wakeups.wait(token, seconds)
            token = engine.wakeups.token()
            seconds = waiting.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def _pause_async(engine: _Engine, waiting: Waiting[T]) -> T:
    """:func:`_pause` in the running loop: its catalog calls are made from the loop's
    thread (as an async workflow's checkpoints are), its pauses in an executor thread."""
    loop = asyncio.get_running_loop()
    try:
        token = engine.wakeups.token()
        seconds = next(waiting)
        while True:
            await loop.run_in_executor(None, engine.wakeups.wait, token, seconds)
            token = engine.wakeups.token()
            seconds = waiting.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
