"""Rendering for the CLI: JSON documents on stdout, people's text and progress on stderr."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from warroom.errors import WarroomError

__all__ = [
    "ProgressPrinter",
    "checkpoint_table",
    "emit_json",
    "fail",
    "human_bytes",
    "human_time",
    "reporting_errors",
    "say",
]

# Piped output is not cut to 80 columns: scripts and pagers get whole values.
stdout = Console(highlight=False, width=None if sys.stdout.isatty() else 250)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


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


def emit_json(document: Any) -> None:
    """The one JSON document a ``--json`` command prints on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def say(message: str) -> None:
    """A line for people, on stderr (so stdout stays clean for ``--json``)."""
    stderr.print(message)


def fail(error: WarroomError, as_json: bool) -> NoReturn:
    if as_json:
        emit_json({"error": error.to_dict()})
    stderr.print(f"[bold red]error:[/] {error.message}", markup=True, highlight=False)
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
    """Bytes so far and the rate, on stderr: one updating line on a terminal, else a line
    every ``quiet_interval`` seconds."""

    def __init__(self, quiet_interval: float = 5.0) -> None:
        self.interactive = sys.stderr.isatty()
        self.quiet_interval = quiet_interval
        self._stage = ""
        self._stage_started = time.monotonic()
        self._last_line = 0.0

    def __call__(self, total: int, stage: str) -> None:
        now = time.monotonic()
        if stage != self._stage:
            self._finish_line()
            self._stage, self._stage_started, self._last_line = stage, now, 0.0
        elapsed = max(now - self._stage_started, 1e-6)
        line = (
            f"{stage}: {human_bytes(total)} ({human_bytes(int(total / elapsed))}/s)"
            if total
            else f"{stage} ..."
        )
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


def checkpoint_table(
    rows: list[dict[str, Any]], columns: list[tuple[str, Callable[..., str]]]
) -> None:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for title, _ in columns:
        table.add_column(title)
    for row in rows:
        table.add_row(*(render(row) for _, render in columns))
    stdout.print(table)
