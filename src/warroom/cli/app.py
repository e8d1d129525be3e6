"""The ``warroom`` commands.

Exit codes: 0 done; 1 the operation failed; 2 bad input or configuration (the message says
which and how to fix it); 3 integrity failure. With ``--json`` stdout holds one JSON document
and nothing else; progress and messages go to stderr.

Importing the commands loads the CLI framework and nothing of the services: each command
imports what it calls in its body, so ``--help`` is fast and a backup does not pay for the
workflow engine, the API's tokens or the listing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from warroom import __version__
from warroom.cli.common import JsonOption, services_for
from warroom.cli.deployment import add_deployment_commands
from warroom.cli.key import key_app
from warroom.cli.render import (
    ProgressPrinter,
    checkpoint_table,
    emit_json,
    escape,
    human_bytes,
    human_time,
    reporting_errors,
    result,
    say,
    set_quiet,
    warn,
)
from warroom.cli.repo import repo_app
from warroom.cli.selftest import selftest
from warroom.cli.service import add_service_commands
from warroom.cli.worker import add_worker_commands
from warroom.cli.workflow import workflow_app
from warroom.errors import InputError

if TYPE_CHECKING:
    from warroom.database.backups import Progress
    from warroom.database.pitr import RecoveryTarget

app = typer.Typer(
    name="warroom",
    no_args_is_help=True,
    context_settings={"max_content_width": 100},
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help, as click renders it: rich markup would swallow "[deployment]" and the like.
    rich_markup_mode=None,
)
create_app = typer.Typer(help="Create a checkpoint.", no_args_is_help=True)
restore_app = typer.Typer(help="Restore from a checkpoint.", no_args_is_help=True)
catalog_app = typer.Typer(
    help="Maintain the catalog (the index of checkpoints).", no_args_is_help=True
)
app.add_typer(create_app, name="create")
app.add_typer(restore_app, name="restore")
app.add_typer(catalog_app, name="catalog")
app.add_typer(workflow_app, name="workflow")
add_deployment_commands(app, create_app)
app.command("selftest")(selftest)
add_service_commands(app)
app.add_typer(key_app, name="key")
app.add_typer(repo_app, name="repo")
add_worker_commands(app)

JobsOption = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        max=64,
        help="Parts dumped at once (default 2: the schema's pg_dump and a stream of table rows "
        "beside it; big tables are stored parts of their own whatever it is).",
        show_default=False,
    ),
]
LoadJobsOption = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        max=64,
        help="Stored parts loaded at once (default: one per CPU).",
        show_default=False,
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Database URL (postgresql://user@host:5432/db or sqlite:///app.db); "
        "default: DATABASE_URL.",
        show_default=False,
    ),
]


class CheckpointType(StrEnum):
    workflow = "workflow"
    database = "database"
    deployment = "deployment"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"warroom {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="No progress or informational lines on stderr (errors stay)."
        ),
    ] = False,
) -> None:
    """War Room Checkpoints: verified database backups, resumable workflows and safe
    deployments.

    Results and --json go to stdout; progress and diagnostics to stderr. Exit codes: 0 done,
    1 the operation or a check failed, 2 bad input or configuration, 3 integrity failure.
    Settings come from the environment (CHECKPOINT_DIR, BACKUP_DIR, DATABASE_URL,
    WARROOM_CATALOG_URL, ...) and an optional ./warroom.toml (or WARROOM_CONFIG)."""
    set_quiet(quiet)


def _check_names(as_json: bool, *names: str | None) -> None:
    """Refuse a bad checkpoint name before any file (catalog, lock, repository) is touched."""
    from warroom.repository.layout import validate_name

    with reporting_errors(as_json):
        for name in names:
            if name is not None:
                validate_name(name)


def _progress() -> tuple[Progress, ProgressPrinter]:
    from warroom.database.backups import Progress

    printer = ProgressPrinter()
    return Progress(printer), printer


@create_app.command("database")
def create_database(
    name: Annotated[
        str | None,
        typer.Option(
            "--name", "-n", help="Checkpoint name; default db-<UTC timestamp>.", show_default=False
        ),
    ] = None,
    url: UrlOption = None,
    jobs: JobsOption = None,
    physical: Annotated[
        bool,
        typer.Option(
            "--physical",
            help="A base backup of the whole PostgreSQL cluster "
            "(pg_basebackup), for point-in-time recovery with the archived WAL.",
        ),
    ] = False,
    restore_point: Annotated[
        str | None,
        typer.Option(
            "--restore-point",
            help="Instead of a backup: create a named restore "
            "point to recover to later (--target-name).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Back up a database into BACKUP_DIR, streamed through SHA-256 and zstd."""
    _check_names(as_json, name, restore_point)
    if restore_point is not None:
        with services_for(as_json) as services:
            point = services.pitr.create_restore_point(restore_point, url)
            if as_json:
                emit_json(point)
            else:
                result(
                    f"restore point [bold]{restore_point}[/] at LSN {point['lsn']} "
                    f"({point['time']})"
                )
        return
    with services_for(as_json) as services:
        progress, printer = _progress()
        manifest = services.backups.create(
            url=url, name=name, jobs=jobs, progress=progress, physical=physical
        )
        printer.done()
        if as_json:
            emit_json(manifest.summary())
            return
        result(
            f"created database checkpoint [bold]{manifest.name}[/] of {escape(manifest.source)}: "
            f"{human_bytes(manifest.size_original)} → {human_bytes(manifest.size_stored)} "
            f"stored in {manifest.duration_seconds:.1f} s, {len(manifest.tables)} tables, "
            f"{len(manifest.parts)} parts, sha256 {manifest.checksum[:16]}"
        )


class BackupStatus(StrEnum):
    completed = "completed"
    checked = "checked"
    restore_tested = "restore-tested"
    damaged = "damaged"


BACKUP_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("NAME", lambda r: r["name"]),
    ("STATUS", lambda r: r["status"]),
    ("CREATED (UTC)", lambda r: human_time(r["created_at"])),
    ("ORIGINAL", lambda r: human_bytes(r["size_original"])),
    ("STORED", lambda r: human_bytes(r["size_stored"])),
    ("CHECKSUM", lambda r: (r["checksum"] or "-")[:12]),
    ("KIND", lambda r: r["details"].get("kind", "-") + (" (safety)" if r["safety"] else "")),
]


def _copies_column(row: dict[str, Any]) -> str:
    """Where a backup is, with replicas: ``2/2``, or ``1/2, missing in s3://b/p``."""
    copies: dict[str, str] = row["repositories"]
    present = sum(state == "present" for state in copies.values())
    others = [f"{state} in {where}" for where, state in copies.items() if state != "present"]
    return ", ".join([f"{present}/{len(copies)}", *others])


@app.command("list")
def list_checkpoints(
    type_: Annotated[
        CheckpointType | None,
        typer.Option("--type", "-t", help="Only this type.", show_default=False),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="Only the database backups of this source (its id or label, as listed).",
            show_default=False,
        ),
    ] = None,
    status: Annotated[
        BackupStatus | None,
        typer.Option(
            "--status", help="Only database backups with this status.", show_default=False
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List checkpoints: database backups by source (newest restore-tested, point-in-time
    window), then the others, oldest first (workflow checkpoints: one row per execution)."""
    from warroom.app.listing import checkpoint_listing

    with services_for(as_json) as services:
        listing = checkpoint_listing(
            services,
            datetime.now(UTC),
            type_.value if type_ else None,
            source,
            status.value if status else None,
        )
        if as_json:
            emit_json(listing)
            return
        rows = listing["checkpoints"]
        if not rows:
            say("no checkpoints" + (f" of type {type_.value}" if type_ else ""))
        by_name = {row["name"]: row for row in rows if row["type"] == "database"}
        for group in listing["sources"]:
            typer.echo(
                f"database backups of {group['label']}"
                f"{' (configured)' if group['configured'] else ''}, source {group['source']}"
            )
            tested = group["newest_restore_tested"]
            typer.echo(f"  newest restore-tested: {tested['name'] if tested else 'none'}")
            window = group["pitr_window"]
            if window:
                typer.echo(
                    f"  point-in-time window: {window['earliest']} to {window['latest']} "
                    f"(LSN {window['earliest_lsn']} to {window['latest_lsn']}, "
                    f"{window['archived_segments']} archived WAL segments)"
                )
            if group["backups"]:
                backups = [by_name[name] for name in group["backups"]]
                replicated = any("repositories" in row for row in backups)
                columns = BACKUP_COLUMNS + [("COPIES", _copies_column)] * replicated
                checkpoint_table(backups, columns)
            typer.echo("")
        others = [row for row in rows if row["type"] != "database"]
        if others:
            checkpoint_table(
                others,
                [
                    ("NAME", lambda r: r["name"]),
                    ("TYPE", lambda r: r["type"]),
                    ("STATUS", lambda r: r["status"]),
                    ("CREATED (UTC)", lambda r: human_time(r["created_at"])),
                    ("SOURCE", lambda r: r["source"] or "-"),
                ],
            )


@app.command("verify")
def verify(
    name: Annotated[str, typer.Argument(help="The database checkpoint to verify.")],
    restore_test: Annotated[
        bool,
        typer.Option(
            "--restore-test",
            help="Also restore into a scratch database and compare every table's row count.",
        ),
    ] = False,
    url: UrlOption = None,
    jobs: LoadJobsOption = None,
    all_copies: Annotated[
        bool,
        typer.Option(
            "--all-copies",
            help="Check the copy in every repository (BACKUP_DIR and WARROOM_REPLICAS).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Re-read every stored part and check its SHA-256 (exit 3 naming a damaged part).
    With --all-copies, check the copy in every repository (BACKUP_DIR and WARROOM_REPLICAS)
    on its own: exit 3 when one is damaged, 1 when one is missing or out of reach."""
    from warroom.database.backups import check_verify_request

    _check_names(as_json, name)
    with reporting_errors(as_json):
        check_verify_request(restore_test=restore_test, all_copies=all_copies)
    with services_for(as_json) as services:
        progress, printer = _progress()
        if all_copies:
            copies = services.backups.verify_copies(name, progress=progress)
            printer.done()
            if as_json:
                emit_json(copies.to_dict())
            else:
                for check in copies.copies:
                    result(f"{name} in {check.location}: {check.state} ({check.detail})")
            failure = copies.failure()
            if failure is not None:
                raise typer.Exit(failure.exit_code)
            return
        report = services.backups.verify(
            name, restore_test=restore_test, url=url, jobs=jobs, progress=progress
        )
        printer.done()
        if as_json:
            emit_json(report.to_dict())
            return
        message = (
            f"{name}: intact ({report.parts_checked} parts, "
            f"{human_bytes(report.bytes_checked)} checked)"
        )
        if report.restore_tested:
            message += f"; restore test passed ({report.tables_checked} tables, row counts match)"
        result(message)


@restore_app.command("database")
def restore_database(
    name: Annotated[
        str | None,
        typer.Argument(
            help="The database checkpoint to restore (not with --target-*).", show_default=False
        ),
    ] = None,
    new_db: Annotated[
        str | None,
        typer.Option(
            "--new-db",
            help="Restore into this new database on the same server.",
            show_default=False,
        ),
    ] = None,
    target_url: Annotated[
        str | None,
        typer.Option(
            "--target-url",
            help="Restore over this existing database (needs --yes; a safety backup of it "
            "is taken first).",
            show_default=False,
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm replacing the data at --target-url.")
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Server for --new-db; default DATABASE_URL, else the backup's source.",
            show_default=False,
        ),
    ] = None,
    target_time: Annotated[
        str | None,
        typer.Option(
            "--target-time",
            help="Point-in-time recovery to this moment "
            "(e.g. '2026-11-26 14:03:00+00'), or 'latest'.",
            show_default=False,
        ),
    ] = None,
    target_lsn: Annotated[
        str | None, typer.Option("--target-lsn", help="Recover to this LSN.", show_default=False)
    ] = None,
    target_name: Annotated[
        str | None,
        typer.Option("--target-name", help="Recover to this restore point.", show_default=False),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="New, empty directory for the recovered cluster.", show_default=False
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", min=1, max=65535, help="Port of the recovered server.", show_default=False
        ),
    ] = None,
    start: Annotated[
        bool,
        typer.Option(
            "--start",
            help="Start the recovered server and wait until it "
            "has reached the target and is promoted.",
        ),
    ] = False,
    jobs: LoadJobsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore a database checkpoint, or recover a cluster to a point in time.

    Integrity is checked before anything is touched."""
    _check_names(as_json, name)
    targets = [t for t in (target_time, target_lsn, target_name) if t is not None]
    if targets:
        with reporting_errors(as_json):
            target = _recovery_target(target_time, target_lsn, target_name, data_dir)
        with services_for(as_json) as services:
            progress, printer = _progress()
            assert data_dir is not None
            recovered = services.pitr.restore(
                target, data_dir, port=port, start=start, progress=progress
            )
            printer.done()
            if as_json:
                emit_json(recovered)
                return
            result(
                f"recovered {recovered['base_backup']} to {recovered['target']} in "
                f"{recovered['data_dir']}"
                + (
                    ": server started and promoted"
                    if start
                    else "; start it with pg_ctl -D DIR start"
                )
            )
        return
    if name is None:
        with reporting_errors(as_json):
            raise InputError(
                "name the checkpoint to restore, or give --target-time, "
                "--target-lsn or --target-name with --data-dir"
            )
    with services_for(as_json) as services:
        progress, printer = _progress()
        report = services.backups.restore(
            name,
            new_db=new_db,
            target_url=target_url,
            confirm=yes,
            url=url,
            jobs=jobs,
            progress=progress,
        )
        printer.done()
        if as_json:
            emit_json(report.to_dict())
            return
        if report.safety_backup:
            result(f"safety backup of the previous contents: [bold]{report.safety_backup}[/]")
        result(
            f"restored {name} into {escape(report.target)} in {report.duration_seconds:.1f} s: "
            f"{report.tables_checked} tables, {report.rows} rows, row counts match the backup"
        )


def _recovery_target(
    time_: str | None, lsn: str | None, restore_point: str | None, data_dir: Path | None
) -> RecoveryTarget:
    from warroom.database.pitr import RecoveryTarget
    from warroom.repository.layout import validate_name
    from warroom.wal import parse_lsn

    if sum(value is not None for value in (time_, lsn, restore_point)) != 1:
        raise InputError("give one of --target-time, --target-lsn and --target-name")
    if data_dir is None:
        raise InputError("point-in-time recovery needs --data-dir DIR (a new, empty directory)")
    if lsn is not None:
        parse_lsn(lsn)
        return RecoveryTarget(lsn=lsn)
    if restore_point is not None:
        return RecoveryTarget(name=validate_name(restore_point))
    assert time_ is not None
    if time_ == "latest":
        return RecoveryTarget()
    try:
        moment = datetime.fromisoformat(time_)
    except ValueError:
        raise InputError(
            f"--target-time {time_!r} is not a time: write it like "
            "'2026-11-26 14:03:00+00', or 'latest'"
        ) from None
    if moment.tzinfo is None:
        raise InputError(f"--target-time {time_!r} has no time zone: add one, e.g. +00")
    return RecoveryTarget(time=moment)


@app.command("setup-pitr")
def setup_pitr(
    url: UrlOption = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Set them with ALTER SYSTEM (and reload).")
    ] = False,
) -> None:
    """Print (or, with --apply, set) the server settings WAL archiving needs."""
    with services_for(False) as services:
        settings = services.pitr.archiving_settings()
        for key, value in settings.items():
            typer.echo(f"{key} = '{value}'")
        if apply:
            services.pitr.apply_archiving_settings(url)
            result(
                "applied with ALTER SYSTEM; restart PostgreSQL if wal_level or archive_mode changed"
            )
        else:
            say("put these in postgresql.conf (or run with --apply), then restart PostgreSQL")


@catalog_app.command("rebuild")
def catalog_rebuild(
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Also re-read every part and check its checksum (as verify does)."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Re-index every database backup from BACKUP_DIR alone: manifests, and the results of
    earlier verifications recorded beside them. A missing or truncated part makes a backup
    damaged; a manifest that cannot be read is skipped and reported (exit 3)."""
    with services_for(as_json) as services:
        progress, printer = _progress()
        indexed, problems = services.backups.rebuild_catalog(check=check, progress=progress)
        printer.done()
        if as_json:
            emit_json({"indexed": indexed, "problems": problems})
        else:
            typer.echo(
                f"indexed {indexed} database checkpoints from {services.backup_storage.location}"
            )
            for problem in problems:
                warn(f"[yellow]problem[/] {escape(problem)}")
        if problems:
            raise typer.Exit(3)
