"""Workflow executions as every face shows and acts on them (``warroom workflow``,
``/api/v1/workflows`` and ``/api/v1/checkpoints/workflow``, the web UI's timelines): the list,
one execution with the state each step recorded, and cancelling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from warroom.services import Services
from warroom.workflow import Execution

__all__ = [
    "Cancellation",
    "ExecutionList",
    "cancel_execution",
    "execution_with_states",
    "list_executions",
]


@dataclass(frozen=True)
class ExecutionList:
    """Executions, newest first, without their steps or results."""

    executions: list[Execution]

    def to_dict(self) -> dict[str, Any]:
        return {"executions": [e.to_dict(with_steps=False) for e in self.executions]}


@dataclass(frozen=True)
class Cancellation:
    """The execution's status once cancelling was asked: ``running`` means it stops before
    its next step."""

    execution_id: str
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {"execution_id": self.execution_id, "status": self.status}


def list_executions(
    services: Services,
    *,
    status: str | None = None,
    workflow: str | None = None,
    limit: int = 1000,
) -> ExecutionList:
    """At most ``limit`` executions, of ``status`` and ``workflow`` when given."""
    return ExecutionList(
        services.workflows.list_executions(status=status, workflow=workflow, limit=limit)
    )


def cancel_execution(services: Services, execution_id: str) -> Cancellation:
    """Cancel ``execution_id`` (NotFoundError when unknown)."""
    return Cancellation(execution_id, services.workflows.cancel(execution_id))


def execution_with_states(services: Services, execution_id: str) -> dict[str, Any]:
    """The execution (NotFoundError when unknown) with ``checkpoints``: its steps in call
    order, each with its recorded ``state`` (None for a step that recorded none)."""
    execution = services.workflows.get_execution(execution_id)
    return {
        **execution.to_dict(with_steps=False),
        "checkpoints": [
            {**info.to_dict(), "state": state}
            for info, state in services.workflows.checkpoints(execution_id)
        ],
    }
