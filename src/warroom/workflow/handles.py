"""Handles of executions started in the background or enqueued."""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from warroom.errors import ConflictError, StepFailedError
from warroom.workflow.store import CANCELLED, FAILED, SUCCEEDED, TERMINAL

if TYPE_CHECKING:
    from warroom.workflow.engine import AutomationEngine

__all__ = ["WorkflowHandle"]


class WorkflowHandle:
    """An execution that runs elsewhere: in a thread of this process (``run`` is its future),
    or in whichever worker claims it. The catalog is the truth for both."""

    def __init__(
        self, engine: AutomationEngine, execution_id: str, run: Future[Any] | None = None
    ) -> None:
        self.engine, self.execution_id, self._run = engine, execution_id, run

    @property
    def status(self) -> str:
        """The execution's status now (enqueued, pending, running, succeeded, failed...)."""
        return self.engine.get_execution(self.execution_id).status

    def get_result(self, timeout: float | None = None) -> Any:
        """Wait until the execution ends and return its result. A failed execution raises
        StepFailedError with its error, a cancelled one ConflictError; TimeoutError when it
        has not ended within ``timeout`` seconds (it goes on running)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._run is not None:
            self._run.exception(timeout)  # its errors are recorded on the execution
        wakeups = self.engine.wakeups
        while True:
            token = wakeups.token()  # before looking: a wake after it ends the wait below
            execution = self.engine.get_execution(self.execution_id)
            if execution.status in TERMINAL:
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(
                    f"execution {self.execution_id} is {execution.status} after {timeout} s"
                )
            poll = self.engine.poll_interval
            wakeups.wait(token, poll if left is None else min(left, poll))
        if execution.status == FAILED:
            raise StepFailedError(
                f"execution {self.execution_id} failed: {execution.error}",
                execution_id=self.execution_id,
            )
        if execution.status == CANCELLED:
            raise ConflictError(
                f"execution {self.execution_id} was cancelled", execution_id=self.execution_id
            )
        assert execution.status == SUCCEEDED
        return execution.result
