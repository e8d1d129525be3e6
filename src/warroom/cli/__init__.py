"""The ``warroom`` command line. Commands parse, call one service, render; no business logic."""

from __future__ import annotations

from warroom.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
