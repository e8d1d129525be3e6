"""Driving workflows from the API: start one of the app's workflows, send a message to an
execution (a person's approval), read its events, fork it.

Starting needs the service's app: ``WARROOM_APP=module:engine`` names the AutomationEngine
whose module registers the workflows and declares the queues; it is imported on first use.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import Field

from warroom.api.deps import Operator, ServicesDep
from warroom.api.models import ERRORS, EXECUTION_ID, Body, Storable
from warroom.errors import NotFoundError
from warroom.workflow import AutomationEngine
from warroom.workflow.loading import load_engine
from warroom.workflow.waits import LABEL

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"], responses=ERRORS)
ExecutionId = Annotated[str, Path(pattern=EXECUTION_ID)]
WorkflowName = Annotated[str, Path(min_length=1, max_length=200)]
_loading = threading.Lock()


class StartIn(Body):
    args: Annotated[list[Any], Storable] = Field(default_factory=list)
    kwargs: Annotated[dict[str, Any], Storable] = Field(default_factory=dict)
    execution_id: str | None = Field(None, pattern=EXECUTION_ID)
    queue: str | None = Field(
        None, description="Enqueue on this queue of the app (default: run in the service)."
    )


class MessageIn(Body):
    topic: str = Field(pattern=LABEL.pattern)
    value: Annotated[Any, Storable] = None
    idempotency_key: str | None = Field(
        None,
        pattern=LABEL.pattern,
        description="A retried request with the same key "
        "delivers nothing more (default: a new key).",
    )


class ForkIn(Body):
    from_step: int = Field(ge=0, description="The first step to run anew.")


def app_engine(request: Request, services: ServicesDep) -> AutomationEngine:
    """The service's app (WARROOM_APP), imported once."""
    with _loading:
        engine: AutomationEngine | None = getattr(request.app.state, "workflow_app", None)
        if engine is None:
            path = services.settings.app
            if not path:
                raise NotFoundError(
                    "the service has no workflow app, so no workflow to start: set "
                    "WARROOM_APP=module:engine"
                )
            engine = request.app.state.workflow_app = load_engine(path)
        return engine


@router.post("/{name}/start", status_code=202)
def start_workflow(
    name: WorkflowName,
    body: StartIn,
    request: Request,
    principal: Operator,
    services: ServicesDep,
) -> dict[str, Any]:
    """Start the app's workflow ``name`` in the service, or enqueue it on ``queue`` for the
    workers; returns the execution id (the same id again is the same execution)."""
    engine = app_engine(request, services)
    if body.queue is None:
        handle = engine.start_workflow(
            name, *body.args, execution_id=body.execution_id, **body.kwargs
        )
    elif body.queue not in engine.queues:
        raise NotFoundError(f"the app has no queue {body.queue!r}", queue=body.queue)
    else:
        queue = engine.queues[body.queue]
        handle = queue.enqueue(name, *body.args, execution_id=body.execution_id, **body.kwargs)
    return {"execution_id": handle.execution_id, "status": handle.status}


@router.post("/executions/{execution_id}/messages", status_code=202)
def send_message(
    execution_id: ExecutionId, body: MessageIn, principal: Operator, services: ServicesDep
) -> dict[str, Any]:
    """Send ``value`` to the execution under ``topic`` (its ``engine.recv(topic)`` gets it),
    once per ``idempotency_key``."""
    key = services.workflows.send(
        execution_id, body.topic, body.value, idempotency_key=body.idempotency_key
    )
    return {"execution_id": execution_id, "topic": body.topic, "message_key": key}


@router.get("/executions/{execution_id}/events")
def read_events(
    execution_id: ExecutionId, principal: Operator, services: ServicesDep
) -> dict[str, Any]:
    """The execution's events (``engine.set_event``), key -> latest value."""
    return {"execution_id": execution_id, "events": services.workflows.events(execution_id)}


@router.post("/executions/{execution_id}/fork", status_code=202)
def fork_execution(
    execution_id: ExecutionId, body: ForkIn, principal: Operator, services: ServicesDep
) -> dict[str, Any]:
    """A new execution that replays the steps before ``from_step`` and runs the others; it
    is pending for a worker."""
    new_id = services.workflows.fork(execution_id, body.from_step)
    return {"execution_id": new_id, "forked_from": execution_id}
