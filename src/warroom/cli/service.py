"""``warroom serve``, ``warroom token create|list|revoke`` and ``warroom cleanup``."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Annotated

import typer

from warroom.auth import ROLES, TokenStore
from warroom.cli.common import JsonOption, services_for
from warroom.cli.render import checkpoint_table, emit_json, reporting_errors, say
from warroom.errors import InputError
from warroom.jobs import JobRunner

schedule_app = typer.Typer(help="The scheduled jobs.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens: create (shown once), list, revoke.", no_args_is_help=True)


def add_service_commands(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
    app.add_typer(schedule_app, name="schedule")

    @app.command("serve")
    def serve(
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
        log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    ) -> None:
        """Run the service: the REST API (with bearer-token authentication) and its jobs."""
        import uvicorn

        from warroom.api import create_app

        with services_for(False) as services:
            owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
            jobs = JobRunner(services.catalog, owner)
            interrupted = jobs.fail_interrupted()
            if interrupted:
                say(
                    f"{interrupted} job(s) interrupted by an earlier stop are marked failed "
                    "(retryable)"
                )
            try:
                uvicorn.run(create_app(services, jobs), host=host, port=port, log_level=log_level)
            finally:
                jobs.close()

    @app.command("cleanup")
    def cleanup(
        days: Annotated[
            int | None,
            typer.Option(
                min=0,
                help="Keep checkpoints younger than this (default CHECKPOINT_RETENTION_DAYS).",
                show_default=False,
            ),
        ] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Apply the retention policy: print what goes and what stays (and why), then do it."""
        with services_for(as_json) as services:
            report = services.cleanup.run(days=days, dry_run=dry_run)
            if as_json:
                emit_json(report)
                return
            for kind in ("database", "deployment"):
                for entry in report[kind]["delete"]:
                    say(
                        f"{'would delete' if dry_run else 'deleted'} {kind} {entry['name']}: "
                        f"{entry['reason']}"
                    )
                for entry in report[kind]["keep"]:
                    say(f"keep {kind} {entry['name']}: {entry['reason']}")
            for execution in report["workflow"]["delete"]:
                say(f"{'would delete' if dry_run else 'deleted'} workflow execution {execution}")
            for leftover in report.get("leftovers_removed", []):
                say(f"removed the leftovers of an interrupted backup: {leftover}")


@token_app.command("create")
def create_token(
    name: Annotated[str, typer.Option("--name", help="Who or what uses the token.")],
    role: Annotated[str, typer.Option("--role", help="viewer, operator or admin.")],
    as_json: JsonOption = False,
) -> None:
    """Create a token. It is printed once, on stdout; only its hash is stored."""
    with reporting_errors(as_json):
        if role not in ROLES:
            raise InputError(f"unknown role {role!r}: use viewer, operator or admin")
    with services_for(as_json) as services:
        info, token = TokenStore(services.catalog).create(name, role)
        if as_json:
            emit_json({**info.to_dict(), "token": token})
            return
        typer.echo(token)
        say(f"created {role} token {name!r} ({info.id}); it is shown only this once")


@token_app.command("list")
def list_tokens(as_json: JsonOption = False) -> None:
    """Tokens with their role, creation and last use (never the tokens themselves)."""
    with services_for(as_json) as services:
        tokens = [t.to_dict() for t in TokenStore(services.catalog).list()]
        if as_json:
            emit_json({"tokens": tokens})
            return
        if not tokens:
            say("no tokens; create one with warroom token create --role admin --name NAME")
            return
        checkpoint_table(
            tokens,
            [
                ("ID", lambda r: r["id"]),
                ("NAME", lambda r: r["name"]),
                ("ROLE", lambda r: r["role"]),
                ("CREATED (UTC)", lambda r: r["created_at"][:19].replace("T", " ")),
                ("LAST USED", lambda r: (r["last_used_at"] or "-")[:19].replace("T", " ")),
                ("REVOKED", lambda r: (r["revoked_at"] or "-")[:19].replace("T", " ")),
            ],
        )


@token_app.command("revoke")
def revoke_token(
    name: Annotated[str, typer.Argument(help="The token's name or id.")],
    as_json: JsonOption = False,
) -> None:
    """Revoke a token: it stops working at once."""
    with services_for(as_json) as services:
        info = TokenStore(services.catalog).revoke(name)
        if as_json:
            emit_json(info.to_dict())
        else:
            say(f"revoked token {info.name!r} ({info.id})")


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@schedule_app.command("list")
def list_schedule(as_json: JsonOption = False) -> None:
    """Each scheduled job: its cron expression, next run, and last run with its outcome."""
    from warroom.scheduler.jobs import build_scheduler

    with services_for(as_json) as services:
        rows = build_scheduler(services, _owner()).describe()
        if as_json:
            emit_json({"jobs": rows})
            return
        checkpoint_table(
            rows,
            [
                ("JOB", lambda r: r["job"]),
                ("SCHEDULE", lambda r: r["schedule"]),
                ("TZ", lambda r: r["timezone"]),
                ("NEXT RUN (UTC)", lambda r: r["next_run"][:16].replace("T", " ")),
                (
                    "LAST RUN",
                    lambda r: (r["last_run"] or {}).get("slot", "-")[:16].replace("T", " "),
                ),
                ("OUTCOME", lambda r: (r["last_run"] or {}).get("status", "-")),
                ("ERROR", lambda r: ((r["last_run"] or {}).get("error") or "")[:60]),
            ],
        )
