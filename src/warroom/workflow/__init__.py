"""Workflow checkpoints: the durable automation engine (see :mod:`warroom.workflow.engine`)."""

from warroom.workflow.engine import (
    AutomationEngine,
    Execution,
    LeaseLostError,
    StepFailedError,
    StepInfo,
    StepMismatchError,
)
from warroom.workflow.handles import WorkflowHandle
from warroom.workflow.queues import Queue
from warroom.workflow.worker import Worker

__all__ = [
    "AutomationEngine",
    "Execution",
    "LeaseLostError",
    "StepFailedError",
    "StepInfo",
    "StepMismatchError",
    "Queue",
    "Worker",
    "WorkflowHandle",
]
