"""``warroom repo sync``: copy what the backup repository's copies lack (WARROOM_REPLICAS)."""

from __future__ import annotations

import typer

from warroom.cli.common import JsonOption, services_for
from warroom.cli.render import emit_json

__all__ = ["repo_app"]

repo_app = typer.Typer(
    help="Maintain the backup repository and its replicas.", no_args_is_help=True
)


@repo_app.command("sync")
def sync(as_json: JsonOption = False) -> None:
    """Copy to each repository (BACKUP_DIR and WARROOM_REPLICAS) every object another one has,
    verified by reading it back, except the backups its own retention would delete; safe to
    interrupt and run again."""
    from warroom.repository.replication import sync as sync_copies

    with services_for(as_json) as services:
        report = sync_copies(services.repository.storage.copies(), skip=services.cleanup.unwanted())
        if as_json:
            emit_json(report.to_dict())
            return
        for location, copied in report.copied.items():
            typer.echo(f"{location}: {copied} objects copied")
