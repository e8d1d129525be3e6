"""The durable automation engine: workflows of steps that resume from the last finished step.

A workflow is a function (plain or ``async def``) registered with ``@engine.workflow(name)``;
the functions it calls that are registered with ``@engine.step(...)`` are its steps. Each call
of a step inside a running workflow gets the next step number of the execution, in call order:
numbers are taken when the step is called (for an async step, when its coroutine is made, so
``asyncio.gather`` numbers its steps in argument order), and :meth:`AutomationEngine.map`
numbers its calls in item order before running them in parallel threads. A step called from a
thread the engine did not start is refused, never run unrecorded. A step called inside a step
is part of that step (an ordinary call).

When a step finishes, its outcome is checkpointed under (execution id, step number): its result,
or, when it failed for good, a record of its exception (see :mod:`warroom.workflow.failures`).
When the execution is resumed, a recorded step is not run again: it returns its recorded result,
or raises its recorded exception again, so the workflow's handlers take the same path. The one
exception is the failure that ended the execution (it escaped the workflow): that step runs
again on resume. If the code now calls a different step at a recorded position, the resume
stops with :class:`StepMismatchError`, which names both steps.

A step whose result the serializer cannot hold has run, so it is recorded failed with
:class:`~warroom.errors.UnstorableValueError` and, on resume, that failure is replayed rather
than the step run again; ``@engine.step(idempotent=True)`` chooses to run it again instead.

A workflow called (or started with ``execute_workflow``) inside a running workflow is a child:
a recorded step of its parent, with the id ``<parent id>:<step number>`` unless one is given;
its result or exception comes back to the parent, and resuming the parent resumes it. A
``start_workflow`` or ``queue.enqueue`` inside a workflow is a step of the parent too, whose
recorded result is the new execution's id (by default ``<parent id>:<step number>``): a replay
returns the same handle and never starts or enqueues a second one.

Only the worker that holds an execution's lease runs it, and every write is conditional on that
lease, so two workers never run one execution at once. A background thread renews the lease
and picks up cancellation requests. An execution whose worker died keeps its lease only until
the lease expires; after that, :meth:`AutomationEngine.recover` takes it over.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import inspect
import os
import re
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar, cast

from warroom.catalog import Catalog, open_catalog
from warroom.config import Settings
from warroom.errors import (
    ConfigurationError,
    ConflictError,
    InputError,
    LeaseLostError,
    NotFoundError,
    StepFailedError,
    StepMismatchError,
    StepTimeoutError,
    UnstorableValueError,
    WarroomError,
)
from warroom.repository import Repository, Storage, open_repository
from warroom.repository.layout import BLOBS_PREFIX, blob_digest
from warroom.scheduler import parse_schedule
from warroom.workflow.failures import error_text, failure_record, replayed_failure
from warroom.workflow.handles import WorkflowHandle
from warroom.workflow.messages import MessageStore
from warroom.workflow.queues import Queue, QueueStore
from warroom.workflow.store import (
    CANCELLED,
    FAILED,
    PENDING,
    RERUN,
    RUNNING,
    STARTED,
    SUCCEEDED,
    ExecutionRow,
    StepRow,
    WorkflowStore,
)
from warroom.workflow.values import ValueCodec
from warroom.workflow.waits import DurableWaits
from warroom.workflow.wakeups import Wakeups

__all__ = [
    "AutomationEngine",
    "Execution",
    "LeaseLostError",
    "StepFailedError",
    "StepInfo",
    "StepMismatchError",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

EXECUTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
SCHEDULED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
EXTERNAL_WORKFLOW = "external"


class _Cancelled(Exception):
    """Raised inside a run to stop it before its next step."""


class _HandedBack(Exception):
    """Raised inside a run to stop it before its next step and give it back (a worker that
    stops)."""


@dataclass(frozen=True)
class StepInfo:
    number: int
    name: str
    kind: str
    status: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    error: str | None = None
    metadata: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "attempts": self.attempts,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_seconds": self.duration_seconds,
            "error": self.error,
            "metadata": self.metadata,
        }


@dataclass(frozen=True)
class Execution:
    id: str
    workflow: str
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    runs: int
    result: Any = None
    steps: list[StepInfo] = field(default_factory=list)

    def checkpoint_row(self) -> dict[str, Any]:
        """This execution as a row of ``warroom list`` (the columns of every checkpoint)."""
        return {
            "type": "workflow",
            "name": self.id,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "source": self.workflow,
            "size_original": None,
            "size_stored": None,
            "checksum": None,
            "verified_at": None,
            "details": {
                "runs": self.runs,
                "error": self.error,
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            },
        }

    def to_dict(self, with_steps: bool = True) -> dict[str, Any]:
        document = {
            "execution_id": self.id,
            "workflow": self.workflow,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "error": self.error,
            "runs": self.runs,
            "result": self.result,
        }
        if with_steps:
            document["steps"] = [step.to_dict() for step in self.steps]
        return document


@dataclass(frozen=True)
class _StepOptions:
    name: str
    retries: int = 0
    backoff: float = 2.0
    retry_delay: float = 1.0
    timeout: float | None = None
    critical: bool = False
    idempotent: bool = False
    kind: str = "step"


@dataclass(frozen=True)
class _StepTarget:
    """What ``engine.map`` needs of a step: its options and its undecorated function."""

    options: _StepOptions
    function: Callable[..., Any]


@dataclass
class _Failure:
    """A failure raised into a workflow by the steps ``numbers``; ``rerun``: run them again on
    resume if it ends the execution."""

    exc: BaseException
    numbers: list[int]
    message: str
    rerun: bool


class _Run:
    """The state of one execution while this worker runs it (in the thread that made it)."""

    def __init__(self, execution_id: str, steps: dict[int, StepRow]) -> None:
        self.execution_id = execution_id
        self.steps = steps
        self.thread = threading.get_ident()
        self.position = 0
        self.failures: list[_Failure] = []
        self.cancel_requested = False
        self.lease_lost = False
        self.handed_back = False
        self.wakeup = threading.Event()
        self._lock = threading.Lock()

    def reserve(self, count: int = 1) -> range:
        """The next ``count`` step numbers, in call order."""
        with self._lock:
            first = self.position
            self.position += count
        return range(first, first + count)

    def next_number(self) -> int:
        return self.reserve()[0]

    def failed(self, failure: _Failure) -> None:
        with self._lock:
            self.failures.append(failure)

    def failure_of(self, exc: BaseException) -> _Failure | None:
        """The step failure that is ``exc`` (the very object), if a step raised it."""
        return next((f for f in self.failures if f.exc is exc), None)

    def raise_if_stopped(self) -> None:
        if self.lease_lost:
            raise LeaseLostError(
                f"execution {self.execution_id} was taken over by another worker",
                execution_id=self.execution_id,
            )
        if self.cancel_requested:
            raise _Cancelled()
        if self.handed_back:
            raise _HandedBack()

    def sleep(self, seconds: float) -> None:
        """Wait between attempts; a cancellation or a lost lease cuts the wait short."""
        self.wakeup.wait(seconds)
        self.raise_if_stopped()

    async def sleep_async(self, seconds: float) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.wakeup.wait, seconds)
        self.raise_if_stopped()


@dataclass
class _Plan:
    """An execution this worker holds the lease of, ready to run."""

    execution_id: str
    workflow: str
    args: list[Any]
    kwargs: dict[str, Any]
    steps: dict[int, StepRow]


@dataclass
class _Outcome:
    """How a run ended: the workflow's value, or the exception that escaped it."""

    value: Any = None
    error: BaseException | None = None


_current_run: ContextVar[_Run | None] = ContextVar("warroom_current_run", default=None)
_in_step: ContextVar[bool] = ContextVar("warroom_in_step", default=False)


def _now() -> datetime:
    return datetime.now(UTC)


def check_execution_id(execution_id: str) -> str:
    if not EXECUTION_ID.fullmatch(execution_id):
        raise InputError(
            f"invalid execution id {execution_id!r}: 1 to 128 characters, starting with a "
            "letter or digit, then letters, digits, '.', '_', ':' or '-'",
            execution_id=execution_id,
        )
    return execution_id


class AutomationEngine(DurableWaits):
    """Registers workflows and steps, runs executions durably, resumes them.

    ``AutomationEngine()`` reads the settings from the environment (catalog at
    ``WARROOM_CATALOG_URL``, large states under ``CHECKPOINT_DIR``);
    ``AutomationEngine(catalog_url=...)`` overrides the catalog. ``allowed_types`` (or
    :meth:`allow`) are the enum, dataclass and pydantic classes step results may hold. Close it
    when done (or use ``with``).
    """

    def __init__(
        self,
        catalog_url: str | None = None,
        *,
        settings: Settings | None = None,
        catalog: Catalog | None = None,
        storage: Storage | None = None,
        serializer: str | None = None,
        signing_key: bytes | str | None = None,
        lease_seconds: float | None = None,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = _now,
        allowed_types: Iterable[type] = (),
    ) -> None:
        settings = settings or Settings.load()
        key = signing_key if signing_key is not None else settings.pickle_signing_key_bytes()
        self._values = ValueCodec(
            Repository(storage, master_keys=settings.master_keys())
            if storage is not None
            else open_repository(settings.checkpoint_dir, settings.master_keys()),
            serializer or settings.workflow_serializer,
            key.encode() if isinstance(key, str) else key,
            settings.workflow_blob_threshold,
            allowed_types,
        )
        self._owns_catalog = catalog is None
        self._catalog = catalog or open_catalog(catalog_url or settings.catalog_url)
        self._store = WorkflowStore(self._catalog)
        self.schedule_catch_up = timedelta(seconds=settings.schedule_catch_up_seconds)
        self.auto_checkpoints = settings.enable_auto_checkpoints
        self.retention_days = settings.checkpoint_retention_days
        self.lease = timedelta(seconds=lease_seconds or settings.workflow_lease_seconds)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._clock = clock
        self._workflows: dict[str, Callable[..., Any]] = {}
        self._queues: dict[str, Queue] = {}
        self.queue_store = QueueStore(self._catalog)
        self._messages = MessageStore(self._catalog)
        self.wakeups = Wakeups.for_catalog(self._catalog)
        self.poll_interval = 0.2  # how often waits look when no wakeup comes
        self._background: ThreadPoolExecutor | None = None
        self._background_lock = threading.Lock()
        self.schedules: dict[str, str] = {}  # workflow name -> cron expression
        self._running: dict[str, _Run] = {}
        self._keeper: threading.Thread | None = None
        self._keeper_lock = threading.Lock()
        self._closed = threading.Event()

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def close(self) -> None:
        self._closed.set()
        if self._background is not None:
            self._background.shutdown(wait=True)
        self.wakeups.close()
        if self._owns_catalog:
            self._catalog.close()

    def __enter__(self) -> AutomationEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- registration -----------------------------------------------------------------------

    def allow(self, cls: type[T]) -> type[T]:
        """Let step results and states hold instances of the enum, dataclass or pydantic class
        ``cls`` (usable as a class decorator). The code that reads them must allow it too."""
        self._values.typed.allow(cls)
        return cls

    def workflow(self, name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Register a workflow function under ``name`` (the name executions refer to). Called
        inside a running workflow, the function runs as a child workflow (see the module
        docstring); elsewhere it is an ordinary call."""
        if not name or len(name) > 200:
            raise InputError("a workflow name must be 1 to 200 characters long")
        options = _StepOptions(f"workflow:{name}", kind="workflow")

        def register(fn: Callable[P, R]) -> Callable[P, R]:
            if name in self._workflows and self._workflows[name] is not fn:
                raise ConfigurationError(f"a workflow named {name!r} is already registered")
            self._workflows[name] = fn

            @functools.wraps(fn)
            def as_child(*args: P.args, **kwargs: P.kwargs) -> R:
                parent = self._calling_run(f"workflow {name!r}")
                if parent is None:
                    return fn(*args, **kwargs)
                number = parent.next_number()
                child_id = self._child_id(parent, number)
                if inspect.iscoroutinefunction(fn):
                    start = functools.partial(self._child_async, name, args, kwargs, child_id)
                    return cast(R, self._drive_async(parent, options, number, start))
                run_child = functools.partial(self._child, name, args, kwargs, child_id)
                return cast(R, self._drive(parent, options, number, run_child))

            return as_child

        return register

    def step(
        self,
        *,
        name: str | None = None,
        retries: int = 0,
        backoff: float = 2.0,
        retry_delay: float = 1.0,
        timeout: float | None = None,
        critical: bool = False,
        idempotent: bool = False,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Make a function (plain or ``async def``) a step: ``@engine.step()`` or
        ``@engine.step(retries=3, ...)``. Inside a workflow its outcome is checkpointed; outside
        one it is an ordinary call.

        A failing step is retried ``retries`` times, waiting ``retry_delay * backoff**n``
        seconds before retry n+1. A step that runs longer than ``timeout`` seconds counts as a
        failed attempt. Python cannot kill a thread, so that attempt's thread is abandoned and
        left to finish on its own. ``critical=True`` writes a checkpoint before the step runs,
        so a crash during the step is visible on the execution. ``idempotent=True``: if the
        step's result cannot be stored, run it again on resume rather than replay the failure.
        """
        if retries < 0 or backoff < 1 or retry_delay < 0 or (timeout is not None and timeout <= 0):
            raise InputError(
                "step options: retries >= 0, backoff >= 1, retry_delay >= 0, timeout > 0"
            )

        def decorate(function: Callable[P, R]) -> Callable[P, R]:
            options = _StepOptions(
                name or function.__name__,
                retries,
                backoff,
                retry_delay,
                timeout,
                critical,
                idempotent,
            )
            is_async = inspect.iscoroutinefunction(function)

            @functools.wraps(function)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                run = self._calling_run(f"step {options.name!r}")
                if run is None:
                    return function(*args, **kwargs)
                call: Callable[[], Any] = functools.partial(function, *args, **kwargs)
                if is_async:
                    return cast(R, self._drive_async(run, options, run.next_number(), call))
                return cast(R, self._drive(run, options, run.next_number(), call))

            wrapper.__warroom_step__ = _StepTarget(options, function)  # type: ignore[attr-defined]
            return wrapper

        return decorate

    def map(self, step: Callable[[T], R], items: Iterable[T], *, max_workers: int = 8) -> list[R]:
        """Run the step ``step`` once per item, in parallel threads, and return the results in
        item order. Inside a workflow the calls take consecutive step numbers in item order, so
        a resume hands each call its own recorded outcome; when calls fail, the first failure
        in item order is raised once all have finished. Outside a workflow it is a plain map."""
        target = getattr(step, "__warroom_step__", None)
        if not isinstance(target, _StepTarget):
            raise InputError("engine.map() runs a step: decorate the function with @engine.step()")
        items = list(items)
        run = self._calling_run(f"engine.map({target.options.name!r})")
        if run is None:
            return [step(item) for item in items]
        numbers = run.reserve(len(items))

        def one(number: int, item: T) -> R:
            call = functools.partial(target.function, item)
            return cast(R, self._drive(run, target.options, number, call))

        with ThreadPoolExecutor(max(1, min(max_workers, len(items)))) as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, one, number, item)
                for number, item in zip(numbers, items, strict=True)
            ]
        errors = [future.exception() for future in futures]
        first = next((exc for exc in errors if exc is not None), None)
        if first is not None:
            failure = run.failure_of(first)
            for other in errors:
                other_failure = run.failure_of(other) if other not in (None, first) else None
                if failure is not None and other_failure is not None:
                    failure.numbers += other_failure.numbers  # they rerun together
            raise first
        return [future.result() for future in futures]

    # -- running ----------------------------------------------------------------------------

    def execute_workflow(
        self,
        workflow: str,
        /,
        *args: Any,
        execution_id: str | None = None,
        resume_failed: bool = True,
        **kwargs: Any,
    ) -> str:
        """Run ``workflow`` with these arguments and return its execution id.

        The run happens in the calling thread; when it returns, the execution has succeeded,
        failed (resumable) or been cancelled: :meth:`get_execution` tells which. An
        ``execution_id`` that exists already is not started again: a failed or pending one is
        resumed (unless ``resume_failed=False``), any other is left as it is; it must be of the
        same workflow with the same arguments (ConflictError names both). Inside a running
        workflow this starts a child workflow (its failure is raised in the parent).
        """
        parent = self._calling_run(f"workflow {workflow!r}", strict=False)
        if parent is not None:
            number = parent.next_number()
            child_id = execution_id or self._child_id(parent, number)
            run_child = functools.partial(self._child, workflow, args, kwargs, child_id)
            self._drive(
                parent, _StepOptions(f"workflow:{workflow}", kind="workflow"), number, run_child
            )
            return child_id
        execution_id, plan = self._start(workflow, args, kwargs, execution_id, resume_failed)
        if plan is not None:
            self._run_plan(plan)
        return execution_id

    async def execute_workflow_async(
        self,
        workflow: str,
        /,
        *args: Any,
        execution_id: str | None = None,
        resume_failed: bool = True,
        **kwargs: Any,
    ) -> str:
        """:meth:`execute_workflow` for ``async def`` workflows, awaited in the running loop
        (the catalog's writes are made from the loop's thread)."""
        execution_id, plan = self._start(workflow, args, kwargs, execution_id, resume_failed)
        if plan is not None:
            await self._run_plan_async(plan)
        return execution_id

    def resume(self, execution_id: str) -> str:
        """Run a failed, cancelled or abandoned execution again from its first unfinished step.
        A succeeded execution is left as it is. Raises ConflictError while another worker runs
        it."""
        plan = self._claim(execution_id)
        if plan is not None:
            self._run_plan(plan)
        return execution_id

    async def resume_async(self, execution_id: str) -> str:
        """:meth:`resume`, awaited in the running loop."""
        plan = self._claim(execution_id)
        if plan is not None:
            await self._run_plan_async(plan)
        return execution_id

    def recover(self) -> list[str]:
        """Resume every execution of this engine's workflows whose worker died (its lease has
        expired on the catalog's clock) or that was asked to resume. Call it when a worker
        starts; returns the ids it resumed."""
        resumed = []
        for plan in self._abandoned_plans():
            self._run_plan(plan)
            resumed.append(plan.execution_id)
        return resumed

    def request_resume(self, execution_id: str) -> Execution:
        """Ask for a failed or cancelled execution to be resumed by whichever worker next calls
        :meth:`recover` with its workflow registered (how the API resumes executions)."""
        row = self._get_row(execution_id)
        if not self._store.request_resume(execution_id, self._clock()):
            raise ConflictError(
                f"execution {execution_id} is {row.status}; only failed or cancelled "
                "executions can be resumed",
                execution_id=execution_id,
            )
        self.wakeups.announce()
        return self.get_execution(execution_id)

    def cancel(self, execution_id: str) -> str:
        """Cancel an execution: a running one of this engine's stops before its next step; an
        external one is cancelled at once. Returns the status."""
        status = self._store.request_cancel(
            check_execution_id(execution_id), self._clock(), EXTERNAL_WORKFLOW
        )
        if status is None:
            raise self._not_found(execution_id)
        local = self._running.get(execution_id)
        if local is not None:
            local.cancel_requested = True
            local.wakeup.set()
        return status

    # -- background runs, queues, forks, schedules ------------------------------------------

    def start_workflow(
        self, workflow: str, /, *args: Any, execution_id: str | None = None, **kwargs: Any
    ) -> WorkflowHandle:
        """Start ``workflow`` in a background thread of this process and return its handle at
        once (the execution is created, or found, before this returns: its errors are raised
        here). Inside a running workflow the start is a step of the parent (see
        :meth:`_spawn`)."""
        parent = self._calling_run(f"workflow {workflow!r}", strict=False)
        if parent is None:
            return self._start_in_background(workflow, args, kwargs, execution_id)
        return self._spawn(
            parent,
            f"start:{workflow}",
            execution_id,
            lambda child_id: self._start_in_background(workflow, args, kwargs, child_id),
        )

    def _start_in_background(
        self,
        workflow: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        execution_id: str | None,
    ) -> WorkflowHandle:
        execution_id, plan = self._start(workflow, args, kwargs, execution_id, resume_failed=True)
        if plan is None:
            return WorkflowHandle(self, execution_id)
        with self._background_lock:
            if self._background is None:
                self._background = ThreadPoolExecutor(32, thread_name_prefix="warroom-workflow")
        return WorkflowHandle(self, execution_id, self._background.submit(self._run_plan, plan))

    def _spawn(
        self,
        parent: _Run,
        name: str,
        execution_id: str | None,
        create: Callable[[str], WorkflowHandle],
    ) -> WorkflowHandle:
        """Start or enqueue an execution from inside the workflow ``parent``, as its step
        ``name``: ``create(child id)`` makes the execution, the child id being
        ``execution_id`` or ``<parent id>:<step number>``, and the step records it. A replay
        returns a handle of the recorded id and makes nothing; a replay after a crash between
        the creation and its record finds the child by its derived id (an explicit
        ``execution_id`` must be stable across runs for that)."""
        kind = name.partition(":")[0]
        child_id = self._once(
            parent,
            name,
            kind,
            lambda number: create(execution_id or self._child_id(parent, number)).execution_id,
        )
        return WorkflowHandle(self, child_id)

    def queue(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
        priority: bool = False,
    ) -> Queue:
        """Declare the queue ``name`` (see :mod:`warroom.workflow.queues`) and return it;
        every process that enqueues to it or works it declares it the same way."""
        queue = Queue(name, self, concurrency, worker_concurrency, rate_limit, priority)
        if self._queues.setdefault(name, queue) != queue:
            raise ConfigurationError(f"queue {name!r} is already declared with other limits")
        return self._queues[name]

    @property
    def queues(self) -> dict[str, Queue]:
        return dict(self._queues)

    def _enqueue(
        self,
        workflow: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        execution_id: str | None,
        placement: tuple[str, int, str | None],
    ) -> WorkflowHandle:
        """:meth:`Queue.enqueue`: insert the execution enqueued at ``placement`` (queue,
        priority, deduplication id); inside a running workflow, as a step of it (see
        :meth:`_spawn`)."""
        self._registered(workflow)
        inputs = self._values.dump([list(args), kwargs], f"the inputs of {workflow!r}")

        def insert(execution_id: str | None) -> WorkflowHandle:
            execution_id = check_execution_id(execution_id or uuid.uuid4().hex)
            if self._store.create_execution(
                execution_id, workflow, inputs, self._clock(), queue=placement
            ):
                self.wakeups.announce()
                return WorkflowHandle(self, execution_id)
            if self._store.get(execution_id) is not None:
                self._same_execution(execution_id, workflow, args, kwargs)
                return WorkflowHandle(self, execution_id)
            queue, _, deduplication_id = placement
            holder = (
                self.queue_store.holder_of(queue, deduplication_id) if deduplication_id else None
            )
            raise ConflictError(
                f"queue {queue!r} already has execution {holder or '(just ended)'} with "
                f"deduplication id {deduplication_id!r}",
                queue=queue,
                deduplication_id=deduplication_id,
                execution_id=holder,
            )

        parent = self._calling_run(f"enqueue of {workflow!r}", strict=False)
        if parent is None:
            return insert(execution_id)
        return self._spawn(parent, f"enqueue:{workflow}", execution_id, insert)

    def _claim_queued(self, queue: Queue, most: int) -> list[_Plan]:
        """Claim up to ``most`` executions of ``queue`` for this engine to run."""
        rows = self.queue_store.claim(queue, most, self.worker_id, self._clock(), self.lease)
        return [self._plan_of(row, with_steps=row.runs > 1) for row in rows]

    def _abandoned_plans(self) -> Iterator[_Plan]:
        """Claim, one by one as the caller asks, the executions :meth:`recover` takes over."""
        for execution_id in self._store.abandoned(sorted(self._workflows)):
            try:
                plan = self._claim(execution_id)
            except ConflictError:
                continue  # another worker took it first
            if plan is not None:
                yield plan

    def _hand_back(self) -> None:
        """Stop every execution this engine runs before its next step, and give it back to
        its queue (or make it pending) for another worker."""
        for run in list(self._running.values()):
            run.handed_back = True
            run.wakeup.set()
        self.wakeups.wake()

    def fork(self, execution_id: str, from_step: int, *, new_id: str | None = None) -> str:
        """A new execution of ``execution_id``'s workflow and inputs whose steps before
        ``from_step`` replay that execution's record and the others run anew (to go on after
        a fix). It is pending: a worker (or :meth:`resume`) runs it. Returns its id."""
        source = self._get_row(execution_id)
        if source.workflow == EXTERNAL_WORKFLOW:
            raise InputError(f"execution {execution_id} is external: it cannot be forked")
        if from_step < 0:
            raise InputError(f"from_step must be 0 or more, not {from_step}")
        new_id = check_execution_id(new_id or uuid.uuid4().hex)
        if self._store.get(new_id) is not None:
            raise ConflictError(f"execution {new_id} exists already", execution_id=new_id)
        self._store.fork(source, new_id, from_step, self._clock())
        self.wakeups.announce()
        return new_id

    def scheduled(
        self, cron: str, *, name: str | None = None
    ) -> Callable[[Callable[[datetime], R]], Callable[[datetime], R]]:
        """Register a workflow run once per slot of ``cron`` (five fields, optionally after
        ``CRON_TZ=Zone``) across all workers: see :mod:`warroom.workflow.scheduled`. The
        function takes the slot's time."""

        def register(fn: Callable[[datetime], R]) -> Callable[[datetime], R]:
            workflow = name or fn.__name__
            if not SCHEDULED_NAME.fullmatch(workflow):
                raise InputError(
                    f"scheduled workflow name {workflow!r}: 1 to 40 letters, digits, '.', '_' "
                    "or '-'"
                )
            parse_schedule(workflow, cron, "UTC")
            registered = self.workflow(workflow)(fn)
            self.schedules[workflow] = cron
            return registered

        return register

    def _once(self, run: _Run, name: str, kind: str, compute: Callable[[int], T]) -> T:
        """An operation of the workflow recorded as a step: on resume its recorded value,
        otherwise ``compute(step number)``, recorded."""
        number = run.next_number()
        recorded = self._recorded(run, number, name)
        if recorded is not None and recorded.status == SUCCEEDED:
            loaded = None if recorded.result is None else self._values.load(recorded.result)
            return cast(T, loaded)
        run.raise_if_stopped()
        value = compute(number)
        now = self._clock()
        stored = self._values.dump(value, f"the value of {name!r}")
        self._record(
            run, StepRow(number, name, kind, SUCCEEDED, stored, None, 1, now, now, 0.0, None)
        )
        return value

    def _get_row(self, execution_id: str) -> ExecutionRow:
        row = self._store.get(check_execution_id(execution_id))
        if row is None:
            raise self._not_found(execution_id)
        return row

    def _not_found(self, execution_id: str) -> NotFoundError:
        return NotFoundError(
            f"no workflow execution {execution_id!r} in catalog {self._catalog.location}",
            execution_id=execution_id,
            catalog=self._catalog.location,
        )

    def resolve_id(self, prefix: str, shown: int = 10) -> str:
        """The execution whose id is ``prefix``, else the one whose id starts with it (as git
        and docker take a unique prefix). Several: InputError listing up to ``shown``."""
        check_execution_id(prefix)
        if self._store.get(prefix) is not None:
            return prefix
        candidates = self._store.ids_starting_with(prefix, shown + 1)
        if not candidates:
            raise self._not_found(prefix)
        if len(candidates) > 1:
            listed = ", ".join(candidates[:shown]) + (", ..." if len(candidates) > shown else "")
            raise InputError(
                f"execution id prefix {prefix!r} is ambiguous: it matches {listed}; "
                "give more of the id",
                prefix=prefix,
                candidates=candidates[:shown],
            )
        return candidates[0]

    def _registered(self, workflow: str) -> Callable[..., Any]:
        if workflow not in self._workflows:
            raise NotFoundError(
                f"no workflow named {workflow!r} is registered; registered: "
                f"{', '.join(sorted(self._workflows)) or 'none'}",
                workflow=workflow,
            )
        return self._workflows[workflow]

    def _start(
        self,
        workflow: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        execution_id: str | None,
        resume_failed: bool,
    ) -> tuple[str, _Plan | None]:
        """Create the execution under this worker's lease, or find the existing one with this
        id: (its id, what to run now, if anything)."""
        self._registered(workflow)
        execution_id = check_execution_id(execution_id or uuid.uuid4().hex)
        inputs = self._values.dump([list(args), kwargs], f"the inputs of {workflow!r}")
        # Inserted already running under this worker's lease: a new execution needs no claim
        # and has no steps to load.
        if self._store.create_execution(
            execution_id, workflow, inputs, self._clock(), owner=self.worker_id, lease=self.lease
        ):
            return execution_id, _Plan(execution_id, workflow, list(args), kwargs, {})
        row = self._same_execution(execution_id, workflow, args, kwargs)
        if row.status == PENDING or (row.status == FAILED and resume_failed):
            return execution_id, self._claim(execution_id)
        return execution_id, None

    def _same_execution(
        self, execution_id: str, workflow: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> ExecutionRow:
        """The existing execution ``execution_id``; ConflictError unless it is of ``workflow``
        with these arguments."""
        row = self._get_row(execution_id)
        recorded = self._values.load(row.inputs)
        if row.workflow != workflow or recorded != [list(args), kwargs]:
            raise ConflictError(
                f"execution {execution_id} exists as workflow {row.workflow!r} with arguments "
                f"{_shown(recorded)}; this call asks for workflow {workflow!r} with "
                f"{_shown([list(args), kwargs])}: use another execution id",
                execution_id=execution_id,
                recorded_workflow=row.workflow,
                called_workflow=workflow,
            )
        return row

    def _claim(self, execution_id: str) -> _Plan | None:
        """Take the lease of an execution to resume it; None when it has succeeded."""
        row = self._get_row(execution_id)
        if row.status == SUCCEEDED:
            return None
        if row.workflow not in self._workflows:
            raise ConfigurationError(
                f"execution {execution_id} belongs to workflow {row.workflow!r}, which this "
                "engine has not registered: import the module that defines it first",
                execution_id=execution_id,
            )
        if not self._store.claim(execution_id, self.worker_id, self._clock(), self.lease):
            current = self._get_row(execution_id)
            if current.status == SUCCEEDED:
                return None
            raise ConflictError(
                f"execution {execution_id} is being run by another worker "
                f"({current.lease_owner}, lease until {current.lease_expires_at})",
                execution_id=execution_id,
            )
        return self._plan_of(row, with_steps=True)

    def _plan_of(self, row: ExecutionRow, with_steps: bool) -> _Plan:
        """What to run of an execution this worker has just claimed; ``with_steps``: load its
        recorded steps (a first run has none)."""
        args, kwargs = self._values.load(row.inputs)
        recorded = self._store.load_steps(row.id) if with_steps else {}
        return _Plan(row.id, row.workflow, args, kwargs, recorded)

    def _run_plan(self, plan: _Plan) -> _Outcome:
        with self._executing(plan) as outcome:
            value = self._workflows[plan.workflow](*plan.args, **plan.kwargs)
            if inspect.iscoroutine(value):
                value = _run_coroutine(value, plan.workflow)
            outcome.value = value
        return outcome

    async def _run_plan_async(self, plan: _Plan) -> _Outcome:
        with self._executing(plan) as outcome:
            value = self._workflows[plan.workflow](*plan.args, **plan.kwargs)
            if inspect.isawaitable(value):
                value = await value
            outcome.value = value
        return outcome

    @contextmanager
    def _executing(self, plan: _Plan) -> Iterator[_Outcome]:
        """Around the call of a workflow function whose lease this worker holds: make it the
        current run, and record how it ended (the body sets ``value``)."""
        execution_id = plan.execution_id
        run = _Run(execution_id, plan.steps)
        self._running[execution_id] = run
        self._ensure_lease_keeper()
        outcome = _Outcome()
        run_token, step_token = _current_run.set(run), _in_step.set(False)
        try:
            yield outcome
        except _Cancelled:
            self._store.finish(execution_id, self.worker_id, CANCELLED, self._clock())
        except _HandedBack:
            self._store.release(execution_id, self.worker_id, self._clock())
        except LeaseLostError:
            pass  # the new owner records everything from here on
        except Exception as exc:
            outcome.error = exc
            failure = run.failure_of(exc)
            rerun = tuple(failure.numbers) if failure and failure.rerun else ()
            error = failure.message if failure else error_text(exc)
            self._store.finish(
                execution_id, self.worker_id, FAILED, self._clock(), error=error, rerun=rerun
            )
        except BaseException:
            self._store.finish(
                execution_id, self.worker_id, FAILED, self._clock(), error="interrupted"
            )
            raise
        else:
            try:
                output = self._values.dump(
                    outcome.value, f"the result of workflow {plan.workflow!r}"
                )
            except UnstorableValueError as exc:
                outcome.error = exc
                self._store.finish(
                    execution_id, self.worker_id, FAILED, self._clock(), error=exc.message
                )
            else:
                self._store.finish(
                    execution_id, self.worker_id, SUCCEEDED, self._clock(), output=output
                )
        finally:
            _in_step.reset(step_token)
            _current_run.reset(run_token)
            self._running.pop(execution_id, None)
            self.wakeups.announce()  # it ended, or went back to its queue

    def _calling_run(self, what: str, strict: bool = True) -> _Run | None:
        """The run a call of a step (or child workflow) belongs to; None for an ordinary call
        (outside workflows, or inside a step). ``strict``: refuse a call from a thread the
        engine did not start while it runs executions, which could not be recorded in order."""
        if _in_step.get():
            return None
        run = _current_run.get()
        if run is not None and run.thread == threading.get_ident():
            return run
        if strict and (run is not None or self._running):
            raise InputError(
                f"{what} was called from a thread this engine did not start while it runs "
                f"execution(s) {', '.join(sorted(self._running))}: its checkpoint could not be "
                "numbered in call order. Run steps in parallel with engine.map(step, items) or "
                "asyncio.gather in an async workflow; to call the function unrecorded, call "
                "its __wrapped__",
            )
        return None

    def _child_id(self, parent: _Run, number: int) -> str:
        child_id = f"{parent.execution_id}:{number}"
        if len(child_id) > 128:
            digest = hashlib.sha256(parent.execution_id.encode()).hexdigest()[:32]
            child_id = f"child-{digest}:{number}"
        return child_id

    def _child(
        self, workflow: str, args: tuple[Any, ...], kwargs: dict[str, Any], child_id: str
    ) -> Any:
        """Run (or resume, or read) a child workflow; its result, or its exception raised."""
        _, plan = self._start(workflow, args, kwargs, child_id, resume_failed=True)
        return self._child_result(child_id, self._run_plan(plan) if plan else None)

    async def _child_async(
        self, workflow: str, args: tuple[Any, ...], kwargs: dict[str, Any], child_id: str
    ) -> Any:
        _, plan = self._start(workflow, args, kwargs, child_id, resume_failed=True)
        return self._child_result(child_id, await self._run_plan_async(plan) if plan else None)

    def _child_result(self, child_id: str, outcome: _Outcome | None) -> Any:
        if outcome is not None and outcome.error is not None:
            raise outcome.error
        row = self._get_row(child_id)
        if row.status != SUCCEEDED:
            raise ConflictError(
                f"child execution {child_id} is {row.status}"
                + (f": {row.error}" if row.error else ""),
                execution_id=child_id,
            )
        return self._values.load(row.output) if row.output else None

    def _ensure_lease_keeper(self) -> None:
        """Start the engine's one lease-keeping thread, if it is not running yet."""
        with self._keeper_lock:
            if self._keeper is None or not self._keeper.is_alive():
                self._keeper = threading.Thread(
                    target=self._keep_leases, name="warroom-leases", daemon=True
                )
                self._keeper.start()

    def _keep_leases(self) -> None:
        """Every lease/3: renew the lease of each execution this engine runs, and pass on
        cancellation requests and lost leases to them."""
        interval = self.lease.total_seconds() / 3
        while not self._closed.wait(interval):
            for run in list(self._running.values()):
                try:
                    state = self._store.renew(
                        run.execution_id, self.worker_id, self._clock(), self.lease
                    )
                except WarroomError:
                    continue  # the catalog hiccuped: try again before the lease runs out
                if state is None and run.execution_id in self._running:
                    run.lease_lost = True
                elif state == "cancel":
                    run.cancel_requested = True
                if state != "ok":
                    run.wakeup.set()

    # -- steps ------------------------------------------------------------------------------

    def _record(self, run: _Run, step: StepRow) -> None:
        if not self._store.record_step(run.execution_id, self.worker_id, step):
            run.lease_lost = True
            run.raise_if_stopped()
        run.steps[step.number] = step

    def _record_finished(
        self,
        run: _Run,
        number: int,
        options: _StepOptions,
        status: str,
        started: datetime,
        attempts: int,
        result: bytes | None = None,
        error: str | None = None,
    ) -> None:
        finished = self._clock()
        duration = (finished - started).total_seconds()
        step = StepRow(
            number,
            options.name,
            options.kind,
            status,
            result,
            error,
            attempts,
            started,
            finished,
            duration,
            None,
        )
        self._record(run, step)

    def _recorded(self, run: _Run, number: int, name: str) -> StepRow | None:
        """Step ``number`` when it is recorded as finished (succeeded, or failed for good)."""
        recorded = run.steps.get(number)
        if recorded is None:
            return None
        if recorded.name != name:
            raise StepMismatchError(
                f"execution {run.execution_id} recorded step #{number} as {recorded.name!r}, "
                f"but the code now calls {name!r} there; the workflow's code changed since "
                "the execution started. Run the original code to finish it, or start a new "
                "execution",
                execution_id=run.execution_id,
                step=number,
                recorded=recorded.name,
                called=name,
            )
        return recorded if recorded.status in (SUCCEEDED, FAILED) else None

    def _fail(
        self,
        run: _Run,
        number: int,
        options: _StepOptions,
        started: datetime,
        attempts: int,
        exc: BaseException,
        rerun: bool,
    ) -> None:
        """Record that step ``number`` failed for good with ``exc``, which is raised next."""
        message = (
            f"step {options.name!r} (#{number}) failed after {attempts} attempt(s): "
            f"{error_text(exc)}"
        )
        if self.auto_checkpoints:
            record = self._values.dump_record(failure_record(exc, self._values.typed))
            self._record_finished(
                run, number, options, FAILED, started, attempts, result=record, error=message
            )
        run.failed(_Failure(exc, [number], message, rerun))

    def _step_flow(
        self, run: _Run, options: _StepOptions, number: int
    ) -> Generator[float | None, Any, Any]:
        """What a step does, whatever runs it (see :meth:`_drive`): replay its recorded outcome,
        or attempt it until it succeeds or has no retries left, and record the outcome. Yields
        None to ask for an attempt (sent its value, or thrown its exception), or a float to
        ask for that many seconds of backoff."""
        recorded = self._recorded(run, number, options.name)
        if recorded is not None:
            if recorded.status == SUCCEEDED:
                return None if recorded.result is None else self._values.load(recorded.result)
            assert recorded.result is not None
            where = f"step {options.name!r} (#{number}) of execution {run.execution_id}"
            exc = replayed_failure(
                self._values.load(recorded.result),
                self._values.typed,
                where,
                lambda message: StepFailedError(message, execution_id=run.execution_id),
            )
            run.failed(_Failure(exc, [number], recorded.error or str(exc), rerun=True))
            raise exc
        run.raise_if_stopped()
        started, attempts = self._clock(), 0
        if options.critical and self.auto_checkpoints:
            self._record(
                run,
                StepRow(
                    number,
                    options.name,
                    options.kind,
                    STARTED,
                    None,
                    None,
                    0,
                    started,
                    None,
                    None,
                    None,
                ),
            )
        while True:
            attempts += 1
            try:
                value = yield None
                break
            except Exception as exc:
                run.raise_if_stopped()  # a run that is stopping records nothing more
                if attempts > options.retries:
                    self._fail(run, number, options, started, attempts, exc, rerun=True)
                    raise
            yield options.retry_delay * options.backoff ** (attempts - 1)
        if not self.auto_checkpoints:
            return value
        try:
            stored = self._values.dump(value, f"the result of step {options.name!r}")
        except UnstorableValueError as exc:
            self._fail(run, number, options, started, attempts, exc, options.idempotent)
            raise
        self._record_finished(run, number, options, SUCCEEDED, started, attempts, stored)
        return value

    def _drive(self, run: _Run, options: _StepOptions, number: int, call: Callable[[], Any]) -> Any:
        """Run step ``number`` in this thread: :meth:`_step_flow`, with ``call`` as an attempt."""
        flow = self._step_flow(run, options, number)
        try:
            request = next(flow)
            while True:
                try:
                    if request is None:
                        token = _in_step.set(True)
                        try:
                            outcome = _call_with_timeout(call, options.timeout, options.name)
                        finally:
                            _in_step.reset(token)
                    else:
                        run.sleep(request)
                        outcome = None
                except Exception as exc:
                    request = flow.throw(exc)
                else:
                    request = flow.send(outcome)
        except StopIteration as stop:
            return stop.value

    async def _drive_async(
        self, run: _Run, options: _StepOptions, number: int, call: Callable[[], Awaitable[Any]]
    ) -> Any:
        """:meth:`_drive` for an async step: the same flow, its attempts and waits awaited."""
        flow = self._step_flow(run, options, number)
        try:
            request = next(flow)
            while True:
                try:
                    if request is None:
                        token = _in_step.set(True)
                        try:
                            outcome = await _await_with_timeout(call, options.timeout, options.name)
                        finally:
                            _in_step.reset(token)
                    else:
                        await run.sleep_async(request)
                        outcome = None
                except Exception as exc:
                    request = flow.throw(exc)
                else:
                    request = flow.send(outcome)
        except StopIteration as stop:
            return stop.value

    def checkpoint(self, state: Any, label: str = "state") -> Any:
        """Record ``state`` at this point of the running workflow and return it. On resume the
        recorded state is returned instead, so a workflow can continue from it; this works
        with ``ENABLE_AUTO_CHECKPOINTS=false`` too."""
        run = self._calling_run("engine.checkpoint()")
        if run is None:
            raise InputError(
                "engine.checkpoint() records a workflow's state: call it inside a running "
                "workflow, outside its steps"
            )
        return self._once(run, f"checkpoint:{label}", "checkpoint", lambda _: state)

    # -- external checkpoints (POST /api/v1/checkpoints/workflow) ---------------------------

    def record_checkpoint(
        self,
        execution_id: str,
        step_id: str,
        state: Any,
        metadata: dict[str, Any] | None = None,
    ) -> StepInfo:
        """Record a checkpoint for a process outside this engine: the step ``step_id`` of
        ``execution_id`` reached ``state``. The catalog numbers steps in the order they arrive,
        so concurrent writers queue. Posting the same step with the same state again changes
        nothing; with a different state, or to an execution that has ended, it is a conflict."""
        check_execution_id(execution_id)
        if not step_id or len(step_id) > 200:
            raise InputError("step_id must be 1 to 200 characters long")
        stored = self._values.dump(state, "the checkpoint state")
        now = self._clock()
        self._store.create_execution(
            execution_id, EXTERNAL_WORKFLOW, self._values.dump(None), now, status=RUNNING
        )
        row = self._get_row(execution_id)
        if row.workflow != EXTERNAL_WORKFLOW:
            raise ConflictError(
                f"execution {execution_id} is run by this engine; external checkpoints go to "
                "executions of their own",
                execution_id=execution_id,
            )
        new = StepRow(
            -1, step_id, "external", SUCCEEDED, stored, None, 1, now, now, 0.0, metadata or {}
        )
        if row.status not in (PENDING, RUNNING):
            existing = None
        else:
            existing = self._store.append_external(execution_id, new, now)
            if existing is new:
                return _step_info(new)
        if existing is not None and existing.result is not None:
            if self._values.load(existing.result) == state:
                return _step_info(existing)
            raise ConflictError(
                f"step {step_id!r} of execution {execution_id} is already recorded "
                "with a different state",
                execution_id=execution_id,
                step_id=step_id,
            )
        raise ConflictError(
            f"execution {execution_id} is {row.status}: it takes no more checkpoints",
            execution_id=execution_id,
        )

    def finish_external(
        self, execution_id: str, status: str, result: Any = None, error: str | None = None
    ) -> Execution:
        """End an external execution: ``succeeded`` (with an optional ``result``), ``failed``
        (with ``error``) or ``cancelled``. ConflictError when it has ended already."""
        row = self._get_row(execution_id)
        if row.workflow != EXTERNAL_WORKFLOW:
            raise ConflictError(
                f"execution {execution_id} is run by this engine; only external executions "
                "are completed, failed or cancelled from outside",
                execution_id=execution_id,
            )
        output = self._values.dump(result, "the result") if status == SUCCEEDED else None
        if not self._store.finish_external(
            execution_id, EXTERNAL_WORKFLOW, status, self._clock(), output, error
        ):
            current = self._get_row(execution_id)
            raise ConflictError(
                f"execution {execution_id} is {current.status} already",
                execution_id=execution_id,
            )
        return self.get_execution(execution_id)

    def checkpoints(self, execution_id: str) -> list[tuple[StepInfo, Any]]:
        """Every recorded checkpoint of an execution in order, with its state, so an
        external process can resume from its last step."""
        self._get_row(execution_id)
        return [
            (_step_info(step), None if step.result is None else self._values.load(step.result))
            for step in self._store.load_steps(execution_id).values()
        ]

    # -- reading and retention --------------------------------------------------------------

    def get_execution(self, execution_id: str) -> Execution:
        """Status, result, error, timings and every step of an execution."""
        row = self._get_row(execution_id)
        steps = [_step_info(step) for step in self._store.load_steps(execution_id).values()]
        return _execution(row, self._values.load(row.output) if row.output else None, steps)

    def list_executions(
        self, status: str | None = None, workflow: str | None = None, limit: int = 1000
    ) -> list[Execution]:
        """Executions, newest first (without their steps or results)."""
        return [
            _execution(row, None, [])
            for row in self._store.list_executions(status, workflow, limit)
        ]

    def _retention_cutoff(self, days: int | None) -> datetime:
        keep_days = self.retention_days if days is None else days
        if keep_days < 0:
            raise InputError(f"days must be 0 or more, not {keep_days}")
        return self._clock() - timedelta(days=keep_days)

    def expired_executions(self, days: int | None = None) -> list[str]:
        """What :meth:`cleanup` would delete now (a dry run)."""
        return self._store.expired(self._retention_cutoff(days), EXTERNAL_WORKFLOW)

    def statistics(self) -> tuple[dict[str, int], dict[str, tuple[int, float]]]:
        """Executions by status; per workflow, the number of steps and their total seconds."""
        return self._store.statistics()

    def blob_storage(self) -> Storage:
        """Where large states live (``workflow/blobs/`` under CHECKPOINT_DIR)."""
        return self._values.storage

    def cleanup(self, days: int | None = None) -> list[str]:
        """Delete the executions that finished (succeeded, failed or cancelled) more than
        ``days`` (default CHECKPOINT_RETENTION_DAYS) ago, the external ones left open with no
        checkpoint for as long, and the blobs no remaining checkpoint refers to. The engine's
        own running executions are never removed by age. Returns the deleted ids."""
        now = self._clock()
        deleted = self._store.delete_expired(self._retention_cutoff(days), EXTERNAL_WORKFLOW)
        referenced = {ref[1:].decode("ascii") for ref in self._store.referenced_results()}
        storage = self._values.storage
        for blob in storage.list(BLOBS_PREFIX):
            digest = blob_digest(blob.key)
            # A blob younger than an hour may belong to a step that is being recorded now.
            if digest not in referenced and now - blob.modified > timedelta(hours=1):
                storage.delete(blob.key)
        return deleted


def _call_with_timeout(call: Callable[[], R], timeout: float | None, name: str) -> R:
    if timeout is None:
        return call()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc

    context = contextvars.copy_context()  # the attempt's thread is inside the step too
    worker = threading.Thread(target=context.run, args=(target,), name=f"step-{name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise StepTimeoutError(f"step {name!r} did not finish within {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


async def _await_with_timeout(
    call: Callable[[], Awaitable[R]], timeout: float | None, name: str
) -> R:
    try:
        return await asyncio.wait_for(call(), timeout)
    except TimeoutError as exc:
        if timeout is None:
            raise
        raise StepTimeoutError(f"step {name!r} did not finish within {timeout:g} s") from exc


def _run_coroutine(coroutine: Coroutine[Any, Any, R], workflow: str) -> R:
    """Run an async workflow's coroutine from synchronous code, in a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    coroutine.close()
    raise InputError(
        f"workflow {workflow!r} is async and this thread runs an event loop: use "
        "await engine.execute_workflow_async(...) or await engine.resume_async(...)"
    )


def _shown(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _step_info(step: StepRow) -> StepInfo:
    return StepInfo(
        step.number,
        step.name,
        step.kind,
        FAILED if step.status == RERUN else step.status,
        step.attempts,
        step.started_at,
        step.finished_at,
        step.duration_seconds,
        step.error,
        step.metadata,
    )


def _execution(row: ExecutionRow, result: Any, steps: list[StepInfo]) -> Execution:
    return Execution(
        row.id,
        row.workflow,
        row.status,
        row.created_at,
        row.started_at,
        row.finished_at,
        row.error,
        row.runs,
        result,
        steps,
    )
