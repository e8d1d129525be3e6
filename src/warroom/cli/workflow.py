"""``warroom workflow list|show|resume|cancel``: workflow executions from the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from warroom.cli.common import JsonOption, services_for
from warroom.cli.render import (
    checkpoint_table,
    emit_json,
    escape,
    human_time,
    reporting_errors,
    result,
    say,
)

ExecutionIdArgument = Annotated[
    str,
    typer.Argument(
        help="The execution id, or a unique prefix of it (as git and docker take).",
        metavar="ID",
    ),
]
workflow_app = typer.Typer(
    help="Workflow executions: list, show, resume, cancel.", no_args_is_help=True
)


@workflow_app.command("list")
def list_executions(
    status: Annotated[
        str | None, typer.Option(help="Only this status.", show_default=False)
    ] = None,
    workflow: Annotated[
        str | None, typer.Option(help="Only this workflow.", show_default=False)
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Workflow executions, newest first."""
    from warroom.app import workflows

    with services_for(as_json) as services:
        listing = workflows.list_executions(services, status=status, workflow=workflow).to_dict()
        if as_json:
            emit_json(listing)
            return
        if not listing["executions"]:
            say("no workflow executions")
            return
        checkpoint_table(
            listing["executions"],
            [
                ("EXECUTION", lambda r: r["execution_id"]),
                ("WORKFLOW", lambda r: r["workflow"]),
                ("STATUS", lambda r: r["status"]),
                ("CREATED (UTC)", lambda r: human_time(r["created_at"])),
                ("RUNS", lambda r: str(r["runs"])),
                ("ERROR", lambda r: (r["error"] or "")[:80]),
            ],
        )


@workflow_app.command("show")
def show(
    execution_id: ExecutionIdArgument,
    as_json: JsonOption = False,
) -> None:
    """An execution with its status, result or error, and every step checkpoint."""
    with services_for(as_json) as services:
        execution = services.workflows.get_execution(services.workflows.resolve_id(execution_id))
        if as_json:
            emit_json(execution.to_dict())
            return
        result(
            f"[bold]{execution.id}[/] ({escape(execution.workflow)}): {execution.status}, "
            f"{execution.runs} run(s)"
        )
        if execution.error:
            result(f"error: {escape(execution.error)}")
        checkpoint_table(
            [step.to_dict() for step in execution.steps],
            [
                ("#", lambda r: str(r["number"])),
                ("STEP", lambda r: r["name"]),
                ("KIND", lambda r: r["kind"]),
                ("STATUS", lambda r: r["status"]),
                ("ATTEMPTS", lambda r: str(r["attempts"])),
                (
                    "SECONDS",
                    lambda r: (
                        f"{r['duration_seconds']:.3f}" if r["duration_seconds"] is not None else "-"
                    ),
                ),
            ],
        )


@workflow_app.command("cancel")
def cancel(
    execution_id: ExecutionIdArgument,
    as_json: JsonOption = False,
) -> None:
    """Cancel an execution; a running one stops before its next step."""
    from warroom.app import workflows

    with services_for(as_json) as services:
        cancelled = workflows.cancel_execution(
            services, services.workflows.resolve_id(execution_id)
        )
        if as_json:
            emit_json(cancelled.to_dict())
        elif cancelled.status == "running":
            result(
                f"{cancelled.execution_id}: cancellation requested; it stops before its next step"
            )
        else:
            result(f"{cancelled.execution_id}: {cancelled.status}")


@workflow_app.command("resume")
def resume(
    execution_id: ExecutionIdArgument,
    app_path: Annotated[
        str,
        typer.Option(
            "--app",
            help="module:attribute of your AutomationEngine, whose module "
            "registers the workflows (e.g. myjobs.workflows:engine).",
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Run a failed or cancelled execution again from its first unfinished step."""
    from warroom.workflow.loading import load_engine

    with reporting_errors(as_json):
        engine = load_engine(app_path)
        execution_id = engine.resolve_id(execution_id)
        engine.resume(execution_id)
        execution = engine.get_execution(execution_id)
        if as_json:
            emit_json(execution.to_dict())
        else:
            result(
                f"{execution_id}: {execution.status}"
                + (f" ({escape(execution.error)})" if execution.error else "")
            )
        if execution.status != "succeeded":
            raise typer.Exit(1)
