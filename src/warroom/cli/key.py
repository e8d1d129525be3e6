"""``warroom key generate|list|rotate|retire``: the encryption keys of the backup repository.

Keys are never printed except by ``generate``, whose one job is to print a new one on stdout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from warroom.cli.common import JsonOption, services_for
from warroom.cli.render import emit_json, reporting_errors, say
from warroom.errors import ConfigurationError
from warroom.repository import Repository

if TYPE_CHECKING:
    from warroom.repository.keyring import Keyring

__all__ = ["key_app"]

key_app = typer.Typer(help="Manage the repository's encryption keys.", no_args_is_help=True)


def _keyring(repository: Repository) -> Keyring:
    if repository.keyring is None:
        raise ConfigurationError(
            f"the repository {repository.location} is not encrypted: set "
            "WARROOM_ENCRYPTION_KEY_FILE to a key from `warroom key generate` for a new, empty "
            "repository"
        )
    return repository.keyring


@key_app.command("generate")
def generate() -> None:
    """Print a new key (base64 of 32 random bytes) on stdout; put it in
    WARROOM_ENCRYPTION_KEY_FILE (first line: the current key)."""
    from warroom.repository.keyring import generate_key

    with reporting_errors():
        typer.echo(generate_key())


@key_app.command("list")
def list_keys(as_json: JsonOption = False) -> None:
    """Each key (by id, never the key itself) that wraps the repository's keys: whether it is
    the current key (the first of WARROOM_ENCRYPTION_KEY_FILE), whether it is configured here,
    and how many repository keys it opens. A key that is not current can be retired."""
    with services_for(as_json) as services:
        keyring = _keyring(services.repository)
        wrapped_by = keyring.wrappings()
        total = len({identity for identities in wrapped_by.values() for identity in identities})
        rows = [
            {
                "id": master_id,
                "current": master_id == keyring.current_master,
                "configured": master_id in keyring.masters,
                "repository_keys": len(identities),
                "of": total,
            }
            for master_id, identities in sorted(wrapped_by.items())
        ]
        if as_json:
            emit_json({"repository": services.repository.location, "keys": rows})
            return
        typer.echo(f"{'KEY':<18}{'CURRENT':<9}{'CONFIGURED':<12}OPENS")
        for row in rows:
            typer.echo(
                f"{row['id']:<18}{'yes' if row['current'] else '':<9}"
                f"{'yes' if row['configured'] else 'no':<12}"
                f"{row['repository_keys']} of {total} repository keys"
            )


@key_app.command("rotate")
def rotate() -> None:
    """Wrap the repository's keys under the first key of WARROOM_ENCRYPTION_KEY_FILE too and
    start a new repository key for new objects; no object is re-encrypted, and the older keys
    still open everything until retired."""
    with services_for(False) as services:
        keyring = _keyring(services.repository)
        new = keyring.rotate()
        typer.echo(f"rotated: new objects use repository key {new} (key {keyring.current_master})")


@key_app.command("retire")
def retire(
    key_id: Annotated[str, typer.Argument(help="The id of the key to retire (16 hex digits).")],
) -> None:
    """Remove key KEY_ID's wrappings, so it no longer opens anything (run rotate first)."""
    with services_for(False) as services:
        removed = _keyring(services.repository).retire(key_id)
        if not removed:
            say(f"key {key_id} wrapped no repository key")
        typer.echo(f"retired key {key_id} ({removed} repository keys rewrapped)")
