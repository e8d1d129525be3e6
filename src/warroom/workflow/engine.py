"""The durable automation engine: workflows of steps that resume from the last finished step.

A workflow is a plain function registered with ``@engine.workflow(name)``; the functions it
calls that are registered with ``@engine.step(...)`` are its steps. Each call of a step inside a
running workflow gets the next step number of the execution. After the step succeeds, its
result is checkpointed under (execution id, step number). When the execution is resumed, a step
number that is already recorded returns the recorded result instead of running the function
again. If the code now calls a different step at that position, the resume stops with
:class:`StepMismatchError`, which names both steps.

Only the worker that holds an execution's lease runs it, and every write is conditional on that
lease, so two workers never run one execution at once. A background thread renews the lease
and picks up cancellation requests. An execution whose worker died keeps its lease only until
the lease expires; after that, :meth:`AutomationEngine.recover` takes it over.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

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
    WarroomError,
)
from warroom.storage import Storage, open_storage
from warroom.workflow.store import (
    CANCELLED,
    FAILED,
    RUNNING,
    SUCCEEDED,
    ExecutionRow,
    StepRow,
    WorkflowStore,
)
from warroom.workflow.values import BLOB_PREFIX, ValueCodec

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

EXECUTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
EXTERNAL_WORKFLOW = "external"
STARTED = "started"


class _Cancelled(Exception):
    """Raised inside a run to stop it before its next step."""


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
    retries: int
    backoff: float
    retry_delay: float
    timeout: float | None
    critical: bool


class _Run:
    """The state of one execution while this worker runs it."""

    def __init__(self, execution_id: str, steps: dict[int, StepRow]) -> None:
        self.execution_id = execution_id
        self.steps = steps
        self.position = 0
        self.cancel_requested = False
        self.lease_lost = False
        self.wakeup = threading.Event()

    def next_number(self) -> int:
        number = self.position
        self.position += 1
        return number

    def raise_if_stopped(self) -> None:
        if self.lease_lost:
            raise LeaseLostError(
                f"execution {self.execution_id} was taken over by another worker",
                execution_id=self.execution_id,
            )
        if self.cancel_requested:
            raise _Cancelled()

    def sleep(self, seconds: float) -> None:
        """Wait between attempts; a cancellation or a lost lease cuts the wait short."""
        self.wakeup.wait(seconds)
        self.raise_if_stopped()


_current_run: ContextVar[_Run | None] = ContextVar("warroom_current_run", default=None)


def _now() -> datetime:
    return datetime.now(UTC)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, WarroomError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def check_execution_id(execution_id: str) -> str:
    if not EXECUTION_ID.fullmatch(execution_id):
        raise InputError(
            f"invalid execution id {execution_id!r}: 1 to 128 characters, starting with a "
            "letter or digit, then letters, digits, '.', '_', ':' or '-'",
            execution_id=execution_id,
        )
    return execution_id


class AutomationEngine:
    """Registers workflows and steps, runs executions durably, resumes them.

    ``AutomationEngine()`` reads the settings from the environment (catalog at
    ``WARROOM_CATALOG_URL``, large states under ``CHECKPOINT_DIR``);
    ``AutomationEngine(catalog_url=...)`` overrides the catalog. Close it when done (or use
    ``with``).
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
    ) -> None:
        settings = settings or Settings.load()
        key = signing_key if signing_key is not None else settings.pickle_signing_key_bytes()
        self._values = ValueCodec(
            storage or open_storage(settings.checkpoint_dir),
            serializer or settings.workflow_serializer,
            key.encode() if isinstance(key, str) else key,
            settings.workflow_blob_threshold,
        )
        self._owns_catalog = catalog is None
        self._catalog = catalog or open_catalog(catalog_url or settings.catalog_url)
        self._store = WorkflowStore(self._catalog)
        self.auto_checkpoints = settings.enable_auto_checkpoints
        self.retention_days = settings.checkpoint_retention_days
        self.lease = timedelta(seconds=lease_seconds or settings.workflow_lease_seconds)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._clock = clock
        self._workflows: dict[str, Callable[..., Any]] = {}
        self._running: dict[str, _Run] = {}
        self._keeper: threading.Thread | None = None
        self._keeper_lock = threading.Lock()
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()
        if self._owns_catalog:
            self._catalog.close()

    def __enter__(self) -> AutomationEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- registration -----------------------------------------------------------------------

    def workflow(self, name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Register a workflow function under ``name`` (the name executions refer to)."""
        if not name or len(name) > 200:
            raise InputError("a workflow name must be 1 to 200 characters long")

        def register(fn: Callable[P, R]) -> Callable[P, R]:
            if name in self._workflows and self._workflows[name] is not fn:
                raise ConfigurationError(f"a workflow named {name!r} is already registered")
            self._workflows[name] = fn
            return fn

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
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Make a function a step: ``@engine.step()`` or ``@engine.step(retries=3, ...)``.
        Inside a workflow its result is checkpointed; outside one it is an ordinary call.

        A failing step is retried ``retries`` times, waiting ``retry_delay * backoff**n``
        seconds before retry n+1. A step that runs longer than ``timeout`` seconds counts as a
        failed attempt. Python cannot kill a thread, so that attempt's thread is abandoned and
        left to finish on its own. ``critical=True`` writes a checkpoint before the step runs,
        so a crash during the step is visible on the execution.
        """
        if retries < 0 or backoff < 1 or retry_delay < 0 or (timeout is not None and timeout <= 0):
            raise InputError(
                "step options: retries >= 0, backoff >= 1, retry_delay >= 0, timeout > 0"
            )

        def decorate(function: Callable[P, R]) -> Callable[P, R]:
            options = _StepOptions(
                name or function.__name__, retries, backoff, retry_delay, timeout, critical
            )

            @functools.wraps(function)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                run = _current_run.get()
                if run is None:
                    return function(*args, **kwargs)
                return self._run_step(run, options, lambda: function(*args, **kwargs))

            return wrapper

        return decorate

    # -- running ----------------------------------------------------------------------------

    def execute_workflow(
        self, workflow: str, /, *args: Any, execution_id: str | None = None, **kwargs: Any
    ) -> str:
        """Run ``workflow`` with these arguments and return its execution id.

        The run happens in the calling thread; when it returns, the execution has succeeded,
        failed (resumable) or been cancelled: :meth:`get_execution` tells which. An
        ``execution_id`` that already exists is never run again: its id is returned as it is.
        """
        if workflow not in self._workflows:
            raise NotFoundError(
                f"no workflow named {workflow!r} is registered; registered: "
                f"{', '.join(sorted(self._workflows)) or 'none'}",
                workflow=workflow,
            )
        execution_id = check_execution_id(execution_id or uuid.uuid4().hex)
        inputs = self._values.dump([list(args), kwargs], f"the inputs of {workflow!r}")
        # Inserted already running under this worker's lease: a new execution needs no claim
        # and has no steps to load.
        if self._store.create_execution(
            execution_id,
            workflow,
            inputs,
            self._clock(),
            owner=self.worker_id,
            lease=self.lease,
        ):
            self._execute(execution_id, workflow, list(args), kwargs, {})
        return execution_id

    def resume(self, execution_id: str) -> str:
        """Run a failed, cancelled or abandoned execution again from its first unfinished step.
        A succeeded execution is left as it is. Raises ConflictError while another worker runs
        it."""
        row = self._get_row(execution_id)
        if row.status != SUCCEEDED:
            self._run(execution_id)
        return execution_id

    def recover(self) -> list[str]:
        """Resume every execution of this engine's workflows whose worker died (its lease has
        expired). Call it when a worker starts; returns the ids it resumed."""
        resumed = []
        for execution_id in self._store.abandoned(self._clock(), sorted(self._workflows)):
            try:
                self._run(execution_id)
            except ConflictError:
                continue  # another worker took it first
            resumed.append(execution_id)
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
        return self.get_execution(execution_id)

    def cancel(self, execution_id: str) -> str:
        """Cancel an execution: a running one stops before its next step. Returns the status."""
        status = self._store.request_cancel(check_execution_id(execution_id), self._clock())
        if status is None:
            raise NotFoundError(
                f"no workflow execution {execution_id!r}", execution_id=execution_id
            )
        local = self._running.get(execution_id)
        if local is not None:
            local.cancel_requested = True
            local.wakeup.set()
        return status

    def _get_row(self, execution_id: str) -> ExecutionRow:
        row = self._store.get(check_execution_id(execution_id))
        if row is None:
            raise NotFoundError(
                f"no workflow execution {execution_id!r}", execution_id=execution_id
            )
        return row

    def _run(self, execution_id: str) -> None:
        row = self._get_row(execution_id)
        if row.workflow not in self._workflows:
            raise ConfigurationError(
                f"execution {execution_id} belongs to workflow {row.workflow!r}, which this "
                "engine has not registered: import the module that defines it first",
                execution_id=execution_id,
            )
        if not self._store.claim(execution_id, self.worker_id, self._clock(), self.lease):
            current = self._get_row(execution_id)
            if current.status == SUCCEEDED:
                return
            raise ConflictError(
                f"execution {execution_id} is being run by another worker "
                f"({current.lease_owner}, lease until {current.lease_expires_at})",
                execution_id=execution_id,
            )
        args, kwargs = self._values.load(row.inputs)
        self._execute(
            execution_id, row.workflow, args, kwargs, self._store.load_steps(execution_id)
        )

    def _execute(
        self,
        execution_id: str,
        workflow: str,
        args: list[Any],
        kwargs: dict[str, Any],
        steps: dict[int, StepRow],
    ) -> None:
        """Run the workflow function of an execution whose lease this worker holds."""
        function = self._workflows[workflow]
        run = _Run(execution_id, steps)
        self._running[execution_id] = run
        self._ensure_lease_keeper()
        token = _current_run.set(run)
        try:
            result = function(*args, **kwargs)
        except _Cancelled:
            self._store.finish(execution_id, self.worker_id, CANCELLED, self._clock())
        except LeaseLostError:
            pass  # the new owner records everything from here on
        except Exception as exc:
            self._store.finish(
                execution_id, self.worker_id, FAILED, self._clock(), error=_error_text(exc)
            )
        except BaseException:
            self._store.finish(
                execution_id, self.worker_id, FAILED, self._clock(), error="interrupted"
            )
            raise
        else:
            try:
                output = self._values.dump(result, f"the result of workflow {workflow!r}")
            except InputError as exc:
                self._store.finish(
                    execution_id, self.worker_id, FAILED, self._clock(), error=exc.message
                )
            else:
                self._store.finish(
                    execution_id, self.worker_id, SUCCEEDED, self._clock(), output=output
                )
        finally:
            _current_run.reset(token)
            self._running.pop(execution_id, None)

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

    def _record(self, run: _Run, step: StepRow) -> None:
        if not self._store.record_step(run.execution_id, self.worker_id, step):
            run.lease_lost = True
            run.raise_if_stopped()
        run.steps[step.number] = step

    def _record_finished(
        self,
        run: _Run,
        number: int,
        name: str,
        status: str,
        started: datetime,
        attempts: int,
        result: bytes | None = None,
        error: str | None = None,
    ) -> None:
        finished = self._clock()
        duration = (finished - started).total_seconds()
        self._record(
            run,
            StepRow(
                number,
                name,
                "step",
                status,
                result,
                error,
                attempts,
                started,
                finished,
                duration,
                None,
            ),
        )

    def _replay(self, run: _Run, number: int, name: str) -> tuple[bool, Any]:
        """(True, recorded result) when step ``number`` is already recorded as succeeded."""
        recorded = run.steps.get(number)
        if recorded is None:
            return False, None
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
        if recorded.status != SUCCEEDED:
            return False, None
        return True, None if recorded.result is None else self._values.load(recorded.result)

    def _run_step(self, run: _Run, options: _StepOptions, call: Callable[[], R]) -> R:
        number = run.next_number()
        done, result = self._replay(run, number, options.name)
        if done:
            return result  # type: ignore[no-any-return]
        run.raise_if_stopped()
        started, attempts = self._clock(), 0
        if options.critical and self.auto_checkpoints:
            self._record(
                run,
                StepRow(
                    number, options.name, "step", STARTED, None, None, 0, started, None, None, None
                ),
            )
        while True:
            attempts += 1
            try:
                value = _call_with_timeout(call, options.timeout, options.name)
                break
            except Exception as exc:
                if attempts > options.retries:
                    failure = StepFailedError(
                        f"step {options.name!r} (#{number}) failed after {attempts} "
                        f"attempt(s): {_error_text(exc)}",
                        execution_id=run.execution_id,
                        step=number,
                    )
                    if self.auto_checkpoints:
                        self._record_finished(
                            run,
                            number,
                            options.name,
                            FAILED,
                            started,
                            attempts,
                            error=failure.message,
                        )
                    raise failure from exc
                run.sleep(options.retry_delay * options.backoff ** (attempts - 1))
        if self.auto_checkpoints:
            stored = self._values.dump(value, f"the result of step {options.name!r}")
            self._record_finished(
                run, number, options.name, SUCCEEDED, started, attempts, result=stored
            )
        return value

    def checkpoint(self, state: Any, label: str = "state") -> Any:
        """Record ``state`` at this point of the running workflow and return it. On resume the
        recorded state is returned instead, so a workflow can continue from it; this works
        with ``ENABLE_AUTO_CHECKPOINTS=false`` too."""
        run = _current_run.get()
        if run is None:
            raise InputError(
                "engine.checkpoint() records a workflow's state: call it inside a running workflow"
            )
        number, name = run.next_number(), f"checkpoint:{label}"
        done, recorded = self._replay(run, number, name)
        if done:
            return recorded
        run.raise_if_stopped()
        now = self._clock()
        self._record(
            run,
            StepRow(
                number,
                name,
                "checkpoint",
                SUCCEEDED,
                self._values.dump(state, "the checkpoint state"),
                None,
                1,
                now,
                now,
                0.0,
                None,
            ),
        )
        return state

    # -- external checkpoints (POST /api/v1/checkpoints/workflow) ---------------------------

    def record_checkpoint(
        self,
        execution_id: str,
        step_id: str,
        state: Any,
        metadata: dict[str, Any] | None = None,
    ) -> StepInfo:
        """Record a checkpoint for a process outside this engine: the step ``step_id`` of
        ``execution_id`` reached ``state``. Posting the same step with the same state again
        changes nothing; with a different state it is a conflict."""
        check_execution_id(execution_id)
        if not step_id or len(step_id) > 200:
            raise InputError("step_id must be 1 to 200 characters long")
        stored = self._values.dump(state, "the checkpoint state")
        now = self._clock()
        self._store.create_execution(
            execution_id, EXTERNAL_WORKFLOW, self._values.dump(None), now, status=RUNNING
        )
        if self._get_row(execution_id).workflow != EXTERNAL_WORKFLOW:
            raise ConflictError(
                f"execution {execution_id} is run by this engine; external checkpoints go to "
                "executions of their own",
                execution_id=execution_id,
            )
        for _ in range(5):
            recorded = self._store.load_steps(execution_id)
            for step in recorded.values():
                if step.name == step_id:
                    if step.result is not None and self._values.load(step.result) == state:
                        return _step_info(step)
                    raise ConflictError(
                        f"step {step_id!r} of execution {execution_id} is already recorded "
                        "with a different state",
                        execution_id=execution_id,
                        step_id=step_id,
                    )
            number = max(recorded, default=-1) + 1
            step = StepRow(
                number,
                step_id,
                "external",
                SUCCEEDED,
                stored,
                None,
                1,
                now,
                now,
                0.0,
                metadata or {},
            )
            if self._store.record_step(execution_id, None, step):
                self._store.touch(execution_id, now)
                return _step_info(step)
        raise ConflictError(
            f"too many concurrent checkpoints for execution {execution_id}; retry",
            execution_id=execution_id,
        )

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
        for blob in storage.list(BLOB_PREFIX):
            digest = blob.key[len(BLOB_PREFIX) :]
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

    worker = threading.Thread(target=target, name=f"step-{name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise StepTimeoutError(f"step {name!r} did not finish within {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def _step_info(step: StepRow) -> StepInfo:
    return StepInfo(
        step.number,
        step.name,
        step.kind,
        step.status,
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
