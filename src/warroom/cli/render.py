"""Rendering for the CLI, as pgBackRest, kubectl and gh do it: results (text, tables, the one
``--json`` document) on stdout; progress and diagnostics on stderr. ``--quiet`` silences the
progress and the informational lines (:func:`say`), never results, warnings or errors.

Messages are rich markup; anything interpolated into them that comes from data or from an
error goes through :func:`escape`, so a ``[deployment]`` in it is printed, not swallowed."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from warroom.errors import WarroomError

__all__ = [
    "ProgressPrinter",
    "checkpoint_table",
    "emit_json",
    "escape",
    "fail",
    "human_bytes",
    "human_duration",
    "human_time",
    "reporting_errors",
    "result",
    "say",
    "set_quiet",
    "warn",
]

# Piped output is not cut to 80 columns: scripts and pagers get whole values.
stdout = Console(highlight=False, width=None if sys.stdout.isatty() else 250)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)
_quiet = False


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no progress and no :func:`say` lines from now on."""
    global _quiet
    _quiet = quiet


def human_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_time(value: str | None, minutes: bool = False) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM:SS`` (``minutes``: ``YYYY-MM-DD HH:MM``), its
    zone left out; ``-`` for none."""
    return (value or "-")[: 16 if minutes else 19].replace("T", " ")


def human_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def emit_json(document: Any) -> None:
    """The one JSON document a ``--json`` command prints on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def result(message: str) -> None:
    """A result for people (what was created, verified, restored), on stdout."""
    stdout.print(message, soft_wrap=True)


def say(message: str) -> None:
    """An informational line, on stderr (so stdout holds only results); not with --quiet."""
    if not _quiet:
        stderr.print(message)


def warn(message: str) -> None:
    """A diagnostic that must be seen (a problem found, a notice), on stderr, even --quiet."""
    stderr.print(message)


def fail(error: WarroomError, as_json: bool) -> NoReturn:
    if as_json:
        emit_json({"error": error.to_dict()})
    stderr.print(f"[bold red]error:[/] {escape(error.message)}")
    raise typer.Exit(error.exit_code)


@contextmanager
def reporting_errors(as_json: bool = False) -> Iterator[None]:
    """Turn our errors into a message and the exit code the error tree gives them."""
    try:
        yield
    except WarroomError as error:
        fail(error, as_json)
    except KeyboardInterrupt:
        stderr.print("[bold red]interrupted[/]: nothing partial was kept", markup=True)
        raise typer.Exit(130) from None


class ProgressPrinter:
    """Bytes so far and the rate, on stderr; with the stage's expected total, also the
    percentage and the time left. One updating line on a terminal, else a line every
    ``quiet_interval`` seconds; nothing with --quiet."""

    def __init__(self, quiet_interval: float = 5.0) -> None:
        self.interactive = sys.stderr.isatty()
        self.quiet_interval = quiet_interval
        self._stage = ""
        self._stage_started = time.monotonic()
        self._last_line = 0.0

    def __call__(self, total: int, stage: str, expected: int | None) -> None:
        if _quiet:
            return
        now = time.monotonic()
        if stage != self._stage:
            self._finish_line()
            self._stage, self._stage_started, self._last_line = stage, now, 0.0
        line = progress_line(stage, total, expected, now - self._stage_started)
        if self.interactive:
            sys.stderr.write("\r\x1b[K" + line)
            sys.stderr.flush()
        elif now - self._last_line >= self.quiet_interval or total == 0:
            self._last_line = now
            sys.stderr.write(line + "\n")

    def _finish_line(self) -> None:
        if self.interactive and self._stage:
            sys.stderr.write("\n")

    def done(self) -> None:
        self._finish_line()
        self._stage = ""


def progress_line(stage: str, total: int, expected: int | None, elapsed: float) -> str:
    """``stage: 1.2 GiB of 4.0 GiB (30%), 80.0 MiB/s, 36s left``; without a known total,
    ``stage: 1.2 GiB (80.0 MiB/s)``; before the first byte, ``stage ...``."""
    if not total:
        return f"{stage} ..."
    rate = total / max(elapsed, 1e-6)
    if not expected:
        return f"{stage}: {human_bytes(total)} ({human_bytes(int(rate))}/s)"
    done = min(total, expected)
    return (
        f"{stage}: {human_bytes(done)} of {human_bytes(expected)} "
        f"({100 * done // expected}%), {human_bytes(int(rate))}/s, "
        f"{human_duration((expected - done) / rate)} left"
    )


def checkpoint_table(
    rows: list[dict[str, Any]], columns: list[tuple[str, Callable[..., str]]]
) -> None:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for title, _ in columns:
        table.add_column(title)
    for row in rows:
        table.add_row(*(render(row) for _, render in columns))
    stdout.print(table)
