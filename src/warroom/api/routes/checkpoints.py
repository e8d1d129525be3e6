"""The seed's routes, exactly, and the per-checkpoint routes beside them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import JSONResponse

from warroom.api.deps import Admin, JobsDep, Operator, ServicesDep, Viewer
from warroom.api.models import (
    ERRORS,
    NAME,
    CheckpointListOut,
    DatabaseBackupIn,
    JobOut,
    RestoreIn,
    VerifyIn,
    WorkflowCheckpointIn,
    WorkflowEndIn,
)
from warroom.api.routes.common import TimeoutQuery, WaitQuery, job_answer
from warroom.app.backups import backup_details
from warroom.app.deployments import deployment_checkpoint
from warroom.app.jobs import start_backup, start_cleanup, start_restore, start_verify
from warroom.app.listing import checkpoint_listing
from warroom.app.workflows import execution_with_states
from warroom.errors import InputError, NotFoundError

router = APIRouter(prefix="/api/v1/checkpoints", tags=["checkpoints"], responses=ERRORS)

CheckpointType = Literal["workflow", "database", "deployment"]
BackupStatus = Literal["completed", "checked", "restore-tested", "damaged"]
JOB_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": JobOut, "description": "Accepted: the job, at its Location."},
    200: {"model": JobOut, "description": "With ?wait=true: the finished job."},
}


@router.post("/workflow", status_code=201)
def record_workflow_checkpoint(
    body: WorkflowCheckpointIn, principal: Operator, services: ServicesDep
) -> dict[str, Any]:
    """Record a checkpoint for an external process (step ``step_id`` of ``execution_id``)."""
    info = services.workflows.record_checkpoint(
        body.execution_id, body.step_id, body.state, body.metadata
    )
    return {"execution_id": body.execution_id, **info.to_dict()}


ExternalEnd = Literal["complete", "fail", "cancel"]
_END_STATUS = {"complete": "succeeded", "fail": "failed", "cancel": "cancelled"}


@router.post("/workflow/{execution_id}/{action}")
def end_workflow_execution(
    execution_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")],
    action: ExternalEnd,
    principal: Operator,
    services: ServicesDep,
    body: Annotated[WorkflowEndIn | None, Body()] = None,
) -> dict[str, Any]:
    """End an external execution: ``complete`` (body ``{"result": ...}``), ``fail`` (body
    ``{"error": "..."}``) or ``cancel``. 409 when it has ended already."""
    body = body or WorkflowEndIn()
    execution = services.workflows.finish_external(
        execution_id, _END_STATUS[action], body.result, body.error
    )
    return execution.to_dict(with_steps=False)


@router.post("/database", status_code=202, responses=JOB_RESPONSES, response_model=None)
def create_database_checkpoint(
    principal: Admin,
    services: ServicesDep,
    runner: JobsDep,
    body: Annotated[DatabaseBackupIn | None, Body()] = None,
    wait: WaitQuery = False,
    timeout: TimeoutQuery = 300,
) -> JSONResponse:
    """Start a database backup of DATABASE_URL as a job."""
    name = body.checkpoint_name if body else None
    job = start_backup(services, runner, name=name, who=principal.name)
    return job_answer(runner, job, wait, timeout)


@router.post("/deployment")
def validate_deployment(
    principal: Operator,
    services: ServicesDep,
    version: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")] = None,
) -> dict[str, Any]:
    """Run the deployment validation now and record it; ``passed`` says whether it may ship."""
    return services.deployments.validate(version).to_dict()


@router.get("/list", response_model=CheckpointListOut)
def list_checkpoints(
    principal: Viewer,
    services: ServicesDep,
    type: Annotated[CheckpointType | None, Query(description="Only this type.")] = None,
    source: Annotated[
        str | None, Query(description="Only the database backups of this source (id or label).")
    ] = None,
    status: Annotated[
        BackupStatus | None, Query(description="Only database backups with this status.")
    ] = None,
) -> dict[str, Any]:
    """Checkpoints, oldest first (workflow checkpoints: one row per execution), and the
    database backups grouped by source, with each source's newest restore-tested backup and
    point-in-time window."""
    return checkpoint_listing(services, datetime.now(UTC), type, source, status)


@router.post(
    "/restore/database/{checkpoint_name}",
    status_code=202,
    responses=JOB_RESPONSES,
    response_model=None,
)
def restore_database(
    checkpoint_name: Annotated[str, Path(pattern=NAME)],
    principal: Admin,
    services: ServicesDep,
    runner: JobsDep,
    body: Annotated[RestoreIn | None, Body()] = None,
    wait: WaitQuery = False,
    timeout: TimeoutQuery = 300,
) -> JSONResponse:
    """Restore a database checkpoint, as a job. With no body, over the configured
    DATABASE_URL, after a safety backup of it (400 when no database is configured); with
    ``{"new_db": NAME}``, into a new database on the configured server. 404: no such
    checkpoint."""
    body = body or RestoreIn()
    if body.new_db is not None and body.target is not None:
        raise InputError(
            'give new_db (restore into a new database) or target: "configured" (over '
            "DATABASE_URL), not both"
        )
    job = start_restore(
        services,
        runner,
        name=checkpoint_name,
        new_db=body.new_db,
        jobs=body.jobs,
        who=principal.name,
    )
    return job_answer(runner, job, wait, timeout)


@router.delete("/cleanup", status_code=202, responses=JOB_RESPONSES, response_model=None)
def cleanup(
    principal: Admin,
    services: ServicesDep,
    runner: JobsDep,
    days: Annotated[int | None, Query(ge=0, le=36500)] = None,
    dry_run: bool = False,
    wait: WaitQuery = False,
    timeout: TimeoutQuery = 300,
) -> JSONResponse:
    """Apply the retention policy (checkpoints older than ``days``, default
    CHECKPOINT_RETENTION_DAYS) as a job; the job's result is the plan and what was removed."""
    job = start_cleanup(services, runner, days=days, dry_run=dry_run, who=principal.name)
    return job_answer(runner, job, wait, timeout)


@router.post(
    "/database/{name}/verify", status_code=202, responses=JOB_RESPONSES, response_model=None
)
def verify_database(
    name: Annotated[str, Path(pattern=NAME)],
    principal: Admin,
    services: ServicesDep,
    runner: JobsDep,
    body: Annotated[VerifyIn | None, Body()] = None,
    wait: WaitQuery = False,
    timeout: TimeoutQuery = 300,
) -> JSONResponse:
    """Verify a database checkpoint's checksums (and with restore_test, restore it into a
    scratch database and compare row counts; with all_copies, check its copy in every
    repository), as a job. 400 for restore_test with all_copies."""
    body = body or VerifyIn()
    job = start_verify(
        services,
        runner,
        name=name,
        restore_test=body.restore_test,
        all_copies=body.all_copies,
        who=principal.name,
    )
    return job_answer(runner, job, wait, timeout)


@router.get("/{type}/{name}")
def get_checkpoint(
    type: CheckpointType,
    name: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")],
    principal: Viewer,
    services: ServicesDep,
) -> dict[str, Any]:
    """One checkpoint. For a workflow, ``name`` is the execution id and the answer lists its
    checkpoints in order, with their states, so an external process can resume from the last.
    For a database backup: its parts with checksums and sizes, and its verification history
    (``checks``)."""
    if type == "workflow":
        return execution_with_states(services, name)
    if type == "database":
        if not re.fullmatch(NAME, name):  # an execution id's ':' is never in a backup name
            raise NotFoundError(f"no database checkpoint named {name!r}", name=name)
        return backup_details(services, name)
    return deployment_checkpoint(services, name)
