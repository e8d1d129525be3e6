"""Who is calling, API tokens, the schedule, deployment history and rollback: what the web UI
reads and does, as JSON routes any client can use."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import JSONResponse

from warroom.api.deps import Admin, JobsDep, ServicesDep, Viewer
from warroom.api.models import ERRORS, RollbackIn, TokenIn
from warroom.api.routes.checkpoints import JOB_RESPONSES
from warroom.api.routes.common import TimeoutQuery, WaitQuery, job_answer
from warroom.app import tokens
from warroom.app.deployments import deployment_history
from warroom.app.jobs import start_rollback
from warroom.app.schedules import schedule_table

router = APIRouter(prefix="/api/v1", responses=ERRORS)
TokenRef = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")]


@router.get("/whoami", tags=["auth"])
def whoami(principal: Viewer) -> dict[str, str]:
    """The caller's name, role and kind of credential (``token`` or ``jwt``)."""
    return {"name": principal.name, "role": principal.role, "kind": principal.kind}


@router.get("/tokens", tags=["auth"])
def list_tokens(principal: Admin, services: ServicesDep) -> dict[str, Any]:
    """Every API token (never its secret), oldest first, revoked ones included."""
    return tokens.list_tokens(services).to_dict()


@router.post("/tokens", tags=["auth"], status_code=201)
def create_token(body: TokenIn, principal: Admin, services: ServicesDep) -> dict[str, Any]:
    """A new token; ``token`` in this answer is the only time its secret is shown."""
    return tokens.create_token(services, name=body.name, role=body.role).to_dict()


@router.post("/tokens/{name_or_id}/revoke", tags=["auth"])
def revoke_token(name_or_id: TokenRef, principal: Admin, services: ServicesDep) -> dict[str, Any]:
    """Revoke a token by name or id (revoking twice keeps the first time)."""
    return tokens.revoke_token(services, name_or_id).to_dict()


@router.get("/schedules", tags=["health"])
def schedules(principal: Viewer, services: ServicesDep) -> dict[str, Any]:
    """Each scheduled job: cron expression, time zone, next run, last run and its outcome; the
    jobs that are off, with why."""
    return schedule_table(services, datetime.now(UTC)).to_dict()


@router.get("/deployments", tags=["deployments"])
def deployments(
    principal: Viewer,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Validations, deploys and rollbacks, newest first, each with its report."""
    return deployment_history(services, limit)


@router.post(
    "/deployments/rollback",
    tags=["deployments"],
    status_code=202,
    responses=JOB_RESPONSES,
    response_model=None,
)
def rollback(
    principal: Admin,
    services: ServicesDep,
    runner: JobsDep,
    body: Annotated[RollbackIn, Body()],
    wait: WaitQuery = False,
    timeout: TimeoutQuery = 300,
) -> JSONResponse:
    """Roll back (``warroom rollback``) as a job: to ``to_version``, or the version in service
    before the current one; the configured rollback command runs and, if configured, the
    pre-deploy database checkpoint is restored."""
    job = start_rollback(services, runner, to_version=body.to_version, who=principal.name)
    return job_answer(runner, job, wait, timeout)
