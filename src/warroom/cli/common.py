"""What every command shares: option types and opening the services with error reporting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from warroom.cli.render import reporting_errors

if TYPE_CHECKING:
    from warroom.services import Services

__all__ = ["JsonOption", "services_for"]

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else.")
]


@contextmanager
def services_for(as_json: bool) -> Iterator[Services]:
    """The services, closed afterwards; our errors become a message and their exit code. The
    composition root is imported here, not with the CLI: ``--help`` and bad input need none
    of it."""
    from warroom.services import build_services

    with reporting_errors(as_json), build_services() as services:
        yield services
