"""``warroom create deployment|all``, ``warroom deploy`` and ``warroom rollback``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from warroom.cli.common import JsonOption, services_for
from warroom.cli.render import checkpoint_table, emit_json, escape, result, say, warn
from warroom.errors import WarroomError

if TYPE_CHECKING:
    from warroom.deployment.runner import ValidationReport

__all__ = ["add_deployment_commands"]

VersionOption = Annotated[
    str | None,
    typer.Option(
        "--version", "-v", help="The version being validated or deployed.", show_default=False
    ),
]
MARKS = {"passed": "[green]ok[/]", "skipped": "[dim]skip[/]"}


def stage_line(stage: str, values: dict[str, Any]) -> str:
    """``rollback: skipped (no rollback_command configured)``: a stage, its status, and why."""
    why = values.get("reason") or values.get("error")
    return f"{stage}: {values.get('status')}" + (f" ({why})" if why else "")


def show_report(report: ValidationReport) -> None:
    """The checks as a table, then one summary line, on stdout (a deploy's stages were
    printed as they ran)."""
    checkpoint_table(
        [result.to_dict() for result in report.results],
        [
            (
                "",
                lambda r: (
                    MARKS.get(r["status"])
                    or ("[red]FAIL[/]" if r["severity"] == "error" else "[yellow]warn[/]")
                ),
            ),
            ("CHECK", lambda r: r["name"]),
            ("SECONDS", lambda r: f"{r['duration_seconds']:.2f}"),
            ("MESSAGE", lambda r: r["message"]),
        ],
    )
    blocking = len(report.blocking)
    error = report.extra.get("error")
    result(
        f"{report.name}: [bold]{report.status}[/]"
        + (f", {blocking} check(s) failed" if blocking else "")
        + (f": {escape(error)}" if error else "")
    )


def _stage_printer(as_json: bool) -> Callable[[str, dict[str, Any]], None]:
    """Each stage once, as it ends: a result on stdout, or progress on stderr with --json."""

    def show(stage: str, values: dict[str, Any]) -> None:
        (say if as_json else result)(escape(stage_line(stage, values)))

    return show


def _finish(report: ValidationReport, as_json: bool, junit: Path | None) -> None:
    if junit is not None:
        from warroom.deployment.junit import junit_xml

        junit.write_bytes(junit_xml(report))
    if as_json:
        emit_json(report.to_dict())
    else:
        show_report(report)
    if report.status not in ("passed", "succeeded"):
        raise typer.Exit(1)


def add_deployment_commands(app: typer.Typer, create_app: typer.Typer) -> None:
    @create_app.command("deployment")
    def create_deployment(
        version: VersionOption = None,
        junit: Annotated[
            Path | None, typer.Option("--junit", help="Also write a JUnit XML report to this file.")
        ] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Validate deployment readiness (checks from [deployment] in warroom.toml).

        Exit 0 when no error-severity check fails, 1 otherwise; the run is recorded as a
        deployment checkpoint."""
        with services_for(as_json) as services:
            report = services.deployments.validate(version)
            _finish(report, as_json, junit)

    @create_app.command("all")
    def create_all(
        version: VersionOption = None,
        name: Annotated[
            str | None,
            typer.Option("--name", "-n", help="Database checkpoint name.", show_default=False),
        ] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Deployment validation, then a database checkpoint (as create-checkpoint.sh all)."""

        with services_for(as_json) as services:
            report = services.deployments.validate(version)
            document: dict[str, Any] = {"deployment": report.to_dict()}
            if not as_json:
                show_report(report)
            try:
                manifest = services.backups.create(name=name)
            except WarroomError as error:
                document["database"] = {"error": error.to_dict()}
                warn(f"[bold red]database checkpoint failed:[/] {escape(error.message)}")
                code = error.exit_code
            else:
                document["database"] = manifest.summary()
                if not as_json:
                    result(f"created database checkpoint [bold]{manifest.name}[/]")
                code = 0 if report.passed else 1
            if as_json:
                emit_json(document)
            if code or not report.passed:
                raise typer.Exit(code or 1)

    @app.command(
        "deploy",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def deploy(
        ctx: typer.Context,
        version: Annotated[str, typer.Option("--version", "-v", help="The version to deploy.")],
        rollback_command: Annotated[
            str | None,
            typer.Option(
                "--rollback-command",
                help="Run this to roll back ({previous_version} is replaced); default: "
                "rollback_command in [deployment.deploy].",
                show_default=False,
            ),
        ] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Validate, back up, tag, run the deploy command, health-check; roll back on failure.

        Usage: warroom deploy --version V -- COMMAND [ARGS...]"""
        with services_for(as_json) as services:
            if rollback_command is not None:
                services.deployments.config.deploy.rollback_command = rollback_command
            services.deployments.echo = _stage_printer(as_json)
            report = services.deployments.deploy(version, list(ctx.args))
            _finish(report, as_json, None)

    @app.command("rollback")
    def rollback(
        to: Annotated[
            str | None,
            typer.Option(
                "--to",
                help="Version to roll back to (default: the one before the current).",
                show_default=False,
            ),
        ] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Run the configured rollback now (and restore the database if configured)."""
        with services_for(as_json) as services:
            services.deployments.echo = _stage_printer(as_json)
            report = services.deployments.rollback(to)
            _finish(report, as_json, None)
