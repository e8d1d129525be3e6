"""The ``warroom`` command line. Commands parse, call one service, render; no business logic."""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Run the CLI. An unexpected failure is reported in one line, with the passwords of any
    URL on the command line or in DATABASE_URL removed, never as a traceback.

    ``warroom wal push|fetch|check`` (PostgreSQL's archive and restore commands, run once per
    WAL segment, and their probe) take a fast path that imports neither the CLI framework nor
    the catalog."""
    if sys.argv[1:2] == ["wal"] and sys.argv[2:3] in (["push"], ["fetch"], ["check"]):
        from warroom.cli.wal_fast import exit_now, run_wal_command

        exit_now(run_wal_command(sys.argv[2:]))
    from warroom.cli.app import app
    from warroom.redact import redact_text, url_password

    try:
        app()
    except Exception as exc:  # noqa: BLE001 - the last resort: our own errors never get here
        urls = [arg for arg in sys.argv if "://" in arg] + [os.environ.get("DATABASE_URL", "")]
        message = redact_text(f"{type(exc).__name__}: {exc}", *map(url_password, urls))
        sys.stderr.write(
            f"error: unexpected failure: {message}\n"
            "(this is a bug in warroom: please report it with the command you ran)\n"
        )
        sys.exit(1)


__all__ = ["main"]
