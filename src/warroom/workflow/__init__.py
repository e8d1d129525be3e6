"""Workflow checkpoints: the durable automation engine (see :mod:`warroom.workflow.engine`)."""

from warroom.workflow.engine import (
    AutomationEngine,
    Execution,
    LeaseLostError,
    StepFailedError,
    StepInfo,
    StepMismatchError,
)

__all__ = [
    "AutomationEngine",
    "Execution",
    "LeaseLostError",
    "StepFailedError",
    "StepInfo",
    "StepMismatchError",
]
