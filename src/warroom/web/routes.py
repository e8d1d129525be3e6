"""The shell page, the static assets and the screens (HTML fragments under ``/ui/``).

Every fragment route reads through the application layer and renders one template for the
caller's role; none of them changes anything (the actions are calls of the JSON API).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from warroom.api.deps import Admin, JobsDep, ServicesDep, Viewer
from warroom.api.models import EXECUTION_ID, NAME
from warroom.app.backups import backup_details, restore_target
from warroom.app.deployments import deployment_history
from warroom.app.jobs import job_progress
from warroom.app.listing import STATUSES, checkpoint_listing
from warroom.app.schedules import schedule_table
from warroom.app.tokens import list_tokens
from warroom.app.workflows import execution_with_states, list_executions
from warroom.audit import read_audit
from warroom.auth import ROLES, Principal, role_allows
from warroom.status import system_status
from warroom.web.present import FILTERS, badge_of

__all__ = ["install_web"]

HERE = FilePath(__file__).parent
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
EXECUTION_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(FILTERS)
templates.env.globals.update(badge_of=badge_of)
router = APIRouter(include_in_schema=False)


def _render(request: Request, template: str, principal: Principal, **context: Any) -> HTMLResponse:
    """``template`` for ``principal``: ``can(role)`` says whether a button may be shown."""
    return templates.TemplateResponse(
        request,
        template,
        {
            "principal": principal,
            "can": lambda need: role_allows(principal.role, need),
            "now": datetime.now(UTC),
            **context,
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/", response_class=HTMLResponse)
def shell(request: Request) -> Response:
    """The page: sign-in, navigation, the screen area and the job tray; it holds no data."""
    return templates.TemplateResponse(
        request,
        "shell.html",
        {},
        headers={
            "Content-Security-Policy": CSP,
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@router.get("/ui/nav", response_class=HTMLResponse)
def nav(request: Request, principal: Viewer) -> HTMLResponse:
    return _render(request, "nav.html", principal)


@router.get("/ui/overview", response_class=HTMLResponse)
def overview(request: Request, principal: Viewer, services: ServicesDep) -> HTMLResponse:
    now = datetime.now(UTC)
    return _render(
        request,
        "overview.html",
        principal,
        status=system_status(services, now),
        schedules={row["job"]: row for row in schedule_table(services, now).jobs},
        stale_after_hours=services.settings.stale_after_hours,
    )


@router.get("/ui/backups", response_class=HTMLResponse)
def backups(
    request: Request,
    principal: Viewer,
    services: ServicesDep,
    source: Annotated[str | None, Query(max_length=4096)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    now = datetime.now(UTC)
    everything = checkpoint_listing(services, now, "database")
    listing = checkpoint_listing(services, now, "database", source or None, status or None)
    return _render(
        request,
        "backups.html",
        principal,
        listing=listing,
        rows=list(reversed(listing["checkpoints"])),
        sources=everything["sources"],
        labels={group["source"]: group["label"] for group in everything["sources"]},
        statuses=STATUSES,
        source=source or "",
        status=status or "",
    )


@router.get("/ui/backups/{name}", response_class=HTMLResponse)
def backup(
    request: Request,
    name: Annotated[str, Path(pattern=NAME)],
    principal: Viewer,
    services: ServicesDep,
) -> HTMLResponse:
    return _render(
        request,
        "backup.html",
        principal,
        backup=backup_details(services, name),
        target=restore_target(services, datetime.now(UTC)),
    )


@router.get("/ui/jobs/{job_id}", response_class=HTMLResponse)
def job(
    request: Request,
    job_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")],
    principal: Viewer,
    services: ServicesDep,
    runner: JobsDep,
) -> HTMLResponse:
    """A job's card; while it runs it asks to be fetched again. When it has finished, the
    ``HX-Trigger`` header tells the page to refresh the screen it shows."""
    current = runner.get(job_id)
    response = _render(
        request, "job.html", principal, job=current, progress=job_progress(services, current)
    )
    if current.finished:
        response.headers["HX-Trigger"] = "warroom-job-finished"
    return response


@router.get("/ui/workflows", response_class=HTMLResponse)
def workflows(
    request: Request,
    principal: Viewer,
    services: ServicesDep,
    status: Annotated[str | None, Query(max_length=32)] = None,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    chosen = status if status in EXECUTION_STATUSES else None
    executions = list_executions(services, status=chosen, workflow=workflow or None, limit=200)
    return _render(
        request,
        "workflows.html",
        principal,
        executions=executions.executions,
        statuses=EXECUTION_STATUSES,
        status=chosen or "",
        workflow=workflow or "",
    )


@router.get("/ui/workflows/{execution_id}", response_class=HTMLResponse)
def workflow(
    request: Request,
    execution_id: Annotated[str, Path(pattern=EXECUTION_ID)],
    principal: Viewer,
    services: ServicesDep,
) -> HTMLResponse:
    return _render(
        request,
        "workflow.html",
        principal,
        execution=execution_with_states(services, execution_id),
    )


@router.get("/ui/deployments", response_class=HTMLResponse)
def deployments(request: Request, principal: Viewer, services: ServicesDep) -> HTMLResponse:
    return _render(request, "deployments.html", principal, history=deployment_history(services))


@router.get("/ui/admin", response_class=HTMLResponse)
def admin(request: Request, principal: Admin, services: ServicesDep) -> HTMLResponse:
    return _render(
        request,
        "admin.html",
        principal,
        tokens=list_tokens(services).tokens,
        roles=ROLES,
        schedules=schedule_table(services, datetime.now(UTC)).jobs,
        audit=read_audit(services.catalog, 100),
    )


def install_web(app: FastAPI) -> None:
    """Serve the UI from ``app``: the shell at ``/``, fragments at ``/ui/``, assets at
    ``/static/`` (from the package)."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
