"""Jobs, workflow executions, the audit log, health and readiness."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from warroom.api.deps import Admin, JobsDep, Operator, ServicesDep, Viewer
from warroom.api.models import ERRORS, EXECUTION_ID, JobOut
from warroom.api.routes.checkpoints import JOB_RESPONSES
from warroom.app import workflows
from warroom.app.health import readiness
from warroom.app.jobs import retry_job
from warroom.audit import read_audit
from warroom.status import system_status

router = APIRouter(responses=ERRORS)
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
ExecutionId = Annotated[str, Path(pattern=EXECUTION_ID)]


@router.get("/api/v1/jobs/{job_id}", tags=["jobs"], response_model=JobOut)
def get_job(job_id: JobId, principal: Viewer, runner: JobsDep) -> dict[str, Any]:
    """A job's status, progress, and result or error."""
    return runner.get(job_id).to_dict()


@router.post(
    "/api/v1/jobs/{job_id}/retry",
    tags=["jobs"],
    status_code=202,
    responses=JOB_RESPONSES,
    response_model=None,
)
def retry(job_id: JobId, principal: Admin, services: ServicesDep, runner: JobsDep) -> JSONResponse:
    """Run a failed job again with the same parameters (a new job)."""
    job = retry_job(services, runner, job_id, who=principal.name)
    return JSONResponse(
        job.to_dict(), status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"}
    )


@router.get("/api/v1/workflows/executions", tags=["workflows"])
def list_executions(
    principal: Viewer,
    services: ServicesDep,
    status: Annotated[
        str | None, Query(pattern=r"^(pending|running|succeeded|failed|cancelled)$")
    ] = None,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Workflow executions, newest first."""
    return workflows.list_executions(
        services, status=status, workflow=workflow, limit=limit
    ).to_dict()


@router.get("/api/v1/workflows/executions/{execution_id}", tags=["workflows"])
def show_execution(
    execution_id: ExecutionId, principal: Viewer, services: ServicesDep
) -> dict[str, Any]:
    """An execution with its status, result or error, and every step."""
    return services.workflows.get_execution(execution_id).to_dict()


@router.post(
    "/api/v1/workflows/executions/{execution_id}/resume", tags=["workflows"], status_code=202
)
def resume_execution(
    execution_id: ExecutionId, principal: Operator, services: ServicesDep
) -> dict[str, Any]:
    """Ask for a failed or cancelled execution to run again: the next worker that calls
    ``engine.recover()`` with its workflow registered resumes it."""
    return services.workflows.request_resume(execution_id).to_dict(with_steps=False)


@router.post("/api/v1/workflows/executions/{execution_id}/cancel", tags=["workflows"])
def cancel_execution(
    execution_id: ExecutionId, principal: Operator, services: ServicesDep
) -> dict[str, Any]:
    """Cancel an execution; a running one stops before its next step."""
    return workflows.cancel_execution(services, execution_id).to_dict()


@router.get("/api/v1/audit", tags=["audit"])
def audit(
    principal: Admin,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Mutating calls, newest first: who, what, when, result."""
    return {"entries": read_audit(services.catalog, limit)}


@router.get("/api/v1/status", tags=["health"])
def status(principal: Viewer, services: ServicesDep) -> dict[str, Any]:
    """Per source: newest intact and restore-tested backup, age, point-in-time window; storage
    used and free, WAL archiving, failing jobs. ``healthy`` is false when no database is
    configured, its newest intact backup is stale, archiving fails or the last scheduled backup
    failed (``problems`` says which)."""
    return dict(system_status(services, datetime.now(UTC)))


@router.get("/metrics", tags=["health"], response_class=PlainTextResponse)
def metrics(request: Request, principal: Viewer) -> PlainTextResponse:
    """Prometheus text format: checkpoints, backups, scheduler, workflows, API requests."""
    return PlainTextResponse(
        generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST
    )


@router.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    """The process answers (no authentication)."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"], responses={503: {"description": "Not ready."}})
def readyz(services: ServicesDep) -> JSONResponse:
    """The catalog and the storage are reachable and ``GET /api/v1/status`` is healthy (the
    configured database has a fresh intact backup, the last scheduled backup did not fail).
    No authentication, so the answer carries short codes only; ``GET /api/v1/status``
    (viewer) gives the details."""
    ready = readiness(services, datetime.now(UTC))
    return JSONResponse(ready.to_dict(), status_code=200 if ready.ready else 503)
