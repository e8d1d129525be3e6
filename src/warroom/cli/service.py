"""``warroom serve``, ``scheduler``, ``schedule list``, ``status``, ``cleanup`` and
``token create|list|revoke``."""

from __future__ import annotations

import errno
import socket
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from warroom.cli.common import JsonOption, services_for
from warroom.cli.render import (
    checkpoint_table,
    emit_json,
    escape,
    human_bytes,
    human_time,
    result,
    say,
)
from warroom.errors import ConfigurationError

if TYPE_CHECKING:
    from warroom.status import StatusReport

schedule_app = typer.Typer(help="The scheduled jobs.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens: create (shown once), list, revoke.", no_args_is_help=True)


def add_service_commands(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
    app.add_typer(schedule_app, name="schedule")

    @app.command("serve")
    def serve(
        host: Annotated[
            str | None,
            typer.Option(
                help="Address to listen on; default WARROOM_HOST, else 0.0.0.0 when PORT is "
                "set, else 127.0.0.1.",
                show_default=False,
            ),
        ] = None,
        port: Annotated[
            int | None,
            typer.Option(
                min=1,
                max=65535,
                help="Port to listen on; default WARROOM_PORT, else PORT, else 8000.",
                show_default=False,
            ),
        ] = None,
        log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    ) -> None:
        """Run the service: the REST API (with bearer-token authentication) and its jobs."""
        import uvicorn

        from warroom.api import create_app
        from warroom.app.runtime import start_service

        with services_for(False) as services:
            address = services.settings.listen_address(host, port)
            sock = _listen(*address)
            say(f"War Room Checkpoints listening on http://{address[0]}:{address[1]}")
            runtime = start_service(services)
            if runtime.interrupted:
                say(
                    f"{runtime.interrupted} job(s) interrupted by an earlier stop are marked "
                    "failed (retryable)"
                )
            config = uvicorn.Config(
                create_app(services, runtime.jobs),
                host=address[0],
                port=address[1],
                log_level=log_level,
            )
            try:
                uvicorn.Server(config).run(sockets=[sock])
            finally:
                runtime.close()
                sock.close()

    @app.command("scheduler")
    def run_scheduler(
        once: Annotated[bool, typer.Option("--once", help="Run the due slots, then exit.")] = False,
    ) -> None:
        """Run the scheduler on its own (backups, cleanup, restore tests, staleness alerts)."""
        from warroom.app.runtime import standalone_scheduler

        with services_for(False) as services:
            alone = standalone_scheduler(services)
            if once:
                for name in alone.tick(wait=True):
                    result(f"ran {name}")
                services.notifier.flush()
                return
            say("scheduler running; Ctrl-C stops it")
            alone.start()
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                alone.stop()

    @app.command("status")
    def status(as_json: JsonOption = False) -> None:
        """Per database: newest intact and restore-tested backup, their age, the point-in-time
        window; storage used, failing jobs. Exit 1 when unhealthy."""
        from warroom.status import system_status

        with services_for(as_json) as services:
            report = system_status(services, datetime.now(UTC))
            if as_json:
                emit_json(report)
            else:
                _show_status(report)
            if not report["healthy"]:
                raise typer.Exit(1)

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
            verb = "would delete" if dry_run else "deleted"
            several = len(report["repositories"]) > 1  # with replicas: each one's own plan
            sections = [
                (
                    f"{'repository ' + plan['location'] + ': ' if several else ''}source "
                    f"{group['label']} (id {group['source']})",
                    group,
                )
                for plan in report["repositories"]
                for group in plan["database"]["sources"]
            ]
            if report["deployment"]["keep"] or report["deployment"]["delete"]:
                sections.append(("deployment checkpoints", report["deployment"]))
            for title, plan in sections:
                typer.echo(title)
                for entry in plan["delete"]:
                    typer.echo(f"  {verb} {entry['name']}: {entry['reason']}")
                for entry in plan["keep"]:
                    typer.echo(f"  keep {entry['name']}: {entry['reason']}")
            for execution in report["workflow"]["delete"]:
                typer.echo(f"{verb} workflow execution {execution}")
            for leftover in report.get("leftovers_removed", []):
                say(f"removed the leftovers of an interrupted backup: {leftover}")


@token_app.command("create")
def create_token(
    name: Annotated[str, typer.Option("--name", help="Who or what uses the token.")],
    role: Annotated[str, typer.Option("--role", help="viewer, operator or admin.")],
    as_json: JsonOption = False,
) -> None:
    """Create a token. It is printed once, on stdout; only its hash is stored."""
    from warroom.app import tokens

    with services_for(as_json) as services:
        created = tokens.create_token(services, name=name, role=role)
        if as_json:
            emit_json(created.to_dict())
            return
        typer.echo(created.token)
        say(f"created {role} token {name!r} ({created.info.id}); it is shown only this once")


@token_app.command("list")
def list_tokens(as_json: JsonOption = False) -> None:
    """Tokens with their role, creation and last use (never the tokens themselves)."""
    from warroom.app import tokens

    with services_for(as_json) as services:
        listing = tokens.list_tokens(services).to_dict()
        if as_json:
            emit_json(listing)
            return
        if not listing["tokens"]:
            say("no tokens; create one with warroom token create --role admin --name NAME")
            return
        checkpoint_table(
            listing["tokens"],
            [
                ("ID", lambda r: r["id"]),
                ("NAME", lambda r: r["name"]),
                ("ROLE", lambda r: r["role"]),
                ("CREATED (UTC)", lambda r: human_time(r["created_at"])),
                ("LAST USED", lambda r: human_time(r["last_used_at"])),
                ("REVOKED", lambda r: human_time(r["revoked_at"])),
            ],
        )


@token_app.command("revoke")
def revoke_token(
    name: Annotated[str, typer.Argument(help="The token's name or id.")],
    as_json: JsonOption = False,
) -> None:
    """Revoke a token: it stops working at once."""
    from warroom.app import tokens

    with services_for(as_json) as services:
        info = tokens.revoke_token(services, name)
        if as_json:
            emit_json(info.to_dict())
        else:
            result(f"revoked token {escape(repr(info.name))} ({info.id})")


def _show_status(report: StatusReport) -> None:
    typer.echo("healthy" if report["healthy"] else "UNHEALTHY")
    for problem in report["problems"]:
        typer.echo(f"  - {problem}")
    for source in report["sources"]:
        newest, tested = source["newest_completed"], source["newest_restore_tested"]
        typer.echo(
            f"{source['label']}{' (configured)' if source['configured'] else ''}: "
            f"{source['backups']} backups, {source['safety_backups']} safety backups"
        )
        typer.echo(
            "  newest intact: "
            + (
                f"{newest['name']} ({newest['status']}), {newest['age_hours']} h old"
                if newest
                else "none"
            )
        )
        typer.echo(
            "  newest restore-tested: "
            + (f"{tested['name']}, {tested['age_hours']} h old" if tested else "none")
        )
        if source["pitr_window"]:
            window = source["pitr_window"]
            typer.echo(f"  point-in-time window: {window['earliest']} to {window['latest']}")
        if source["wal_archiving"]:
            archiving = source["wal_archiving"]
            typer.echo(
                "  WAL archiving: "
                + (archiving.get("problem") or "failing" if archiving.get("failing") else "ok")
            )
    storage = report["storage"]
    typer.echo(
        f"stored: database backups {human_bytes(storage['database_bytes'])}, workflow blobs "
        f"{human_bytes(storage['workflow_blob_bytes'])}; "
        f"free {human_bytes(storage['free_bytes'])}"
    )
    for job, run in report["scheduled"].items():
        typer.echo(f"scheduled {job}: last run {run['status']} (slot {run['slot']})")
    typer.echo(f"failed jobs: {report['failed_jobs']}")


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (connections wait in its backlog until uvicorn
    serves them); a port in use or an address that is not this host's is bad configuration
    (exit 2), said in words."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        from warroom.storage.files import os_reason

        sock.close()
        fix = (
            "the port is in use by another process: stop it, or choose another port with "
            "--port (or WARROOM_PORT)"
            if exc.errno == errno.EADDRINUSE
            else f"{os_reason(exc)}: choose another address with --host/--port (or "
            "WARROOM_HOST/WARROOM_PORT)"
        )
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {fix}",
            host=host,
            port=port,
        ) from exc
    return sock


@schedule_app.command("list")
def list_schedule(as_json: JsonOption = False) -> None:
    """Each scheduled job: its cron expression, next run, and last run with its outcome."""
    from warroom.app.schedules import schedule_table

    with services_for(as_json) as services:
        table = schedule_table(services, datetime.now(UTC))
        if as_json:
            emit_json(table.to_dict())
            return
        checkpoint_table(
            table.jobs,
            [
                ("JOB", lambda r: r["job"]),
                ("SCHEDULE", lambda r: r["schedule"] or "off"),
                ("TZ", lambda r: r["timezone"] or "-"),
                (
                    "NEXT RUN (UTC)",
                    lambda r: r["off"] or human_time(r["next_run"], minutes=True),
                ),
                (
                    "LAST RUN",
                    lambda r: human_time((r["last_run"] or {}).get("slot"), minutes=True),
                ),
                ("OUTCOME", lambda r: (r["last_run"] or {}).get("status", "-")),
                ("ERROR", lambda r: ((r["last_run"] or {}).get("error") or "")[:60]),
            ],
        )
