"""One workflow execution with every step and the state each step recorded
(``GET /api/v1/checkpoints/workflow/{id}`` and the web UI's execution timeline)."""

from __future__ import annotations

from typing import Any

from warroom.services import Services

__all__ = ["execution_with_states"]


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
