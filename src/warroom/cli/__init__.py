"""The ``warroom`` command line. Commands parse, call one service, render; no business logic."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


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
    except SystemExit as done:
        _finish(done.code)
    except Exception as exc:  # noqa: BLE001 - the last resort: our own errors never get here
        urls = [arg for arg in sys.argv if "://" in arg] + [os.environ.get("DATABASE_URL", "")]
        message = redact_text(f"{type(exc).__name__}: {exc}", *map(url_password, urls))
        sys.stderr.write(
            f"error: unexpected failure: {message}\n"
            "(this is a bug in warroom: please report it with the command you ran)\n"
        )
        sys.exit(1)


def _finish(code: object) -> NoReturn:
    """Exit with SystemExit's ``code`` (None, a number, or a message for stderr and 1) once a
    command is done, without tearing the interpreter down: freeing every module and object of
    the import graph (SQLAlchemy, pydantic, the CLI framework) took 0.15-0.3 s after each
    command. What exit must still do is done first: the atexit handlers (logging's flush,
    finalizers), then :func:`~warroom.cli.wal_fast.exit_now` flushes stdout and stderr. While
    another thread runs, the normal exit, which waits for it."""
    from warroom.cli.wal_fast import exit_now

    if isinstance(code, str):
        sys.stderr.write(code + "\n")
        code = 1
    status = code if isinstance(code, int) else 0 if code is None else 1
    if threading.active_count() > 1:
        sys.exit(status)
    atexit._run_exitfuncs()
    exit_now(status)


__all__ = ["main"]
