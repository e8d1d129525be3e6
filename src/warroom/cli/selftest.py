"""``warroom selftest``: a self-test of the whole checkpoint system that a new user can run.

It works in a temporary repository and catalog, so it never touches real checkpoints. The
database is DATABASE_URL when set (backed up, verified, restored into a scratch database and
dropped), else an example SQLite database. One PASS/FAIL line per part; exit 1 if any fails.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from warroom.cli.render import escape, reporting_errors, result
from warroom.errors import WarroomError

if TYPE_CHECKING:
    from warroom.services import Services
    from warroom.workflow import AutomationEngine

__all__ = ["selftest"]


def _workflow(services: Services) -> str:
    engine: AutomationEngine = services.workflows
    calls: list[str] = []

    @engine.step()
    def first() -> int:
        calls.append("first")
        return 1

    @engine.step()
    def second(value: int) -> int:
        calls.append("second")
        if calls.count("second") == 1:
            raise RuntimeError("planned failure")
        return value + 1

    @engine.workflow("selftest")
    def flow() -> int:
        return second(first())

    execution_id = engine.execute_workflow("selftest")
    if engine.get_execution(execution_id).status != "failed":
        raise AssertionError("the planned failure did not fail the execution")
    engine.resume(execution_id)
    execution = engine.get_execution(execution_id)
    if execution.status != "succeeded" or calls.count("first") != 1:
        raise AssertionError(f"resume went wrong: {execution.status}, calls {calls}")
    return f"failed, resumed and succeeded without re-running the finished step ({execution_id})"


def _example_database(directory: Path) -> str:
    path = directory / "example.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items (name) VALUES (?)", [(f"n{i}",) for i in range(500)])
    return f"sqlite:///{path}"


def selftest() -> None:
    """Self-test: workflow, database backup, verify, restore test, deployment validation."""
    from warroom.config import Settings
    from warroom.services import build_services

    with reporting_errors(), tempfile.TemporaryDirectory(prefix="warroom-selftest-") as tmp:
        base = Path(tmp)
        configured = Settings.load()
        database_url = configured.database_url or _example_database(base)
        settings = configured.model_copy(
            update={
                "backup_dir": base / "backups",
                "checkpoint_dir": base / "checkpoints",
                "catalog_url": f"sqlite:///{base}/catalog.db",
                "database_url": database_url,
            }
        )
        for directory in (settings.backup_dir, settings.checkpoint_dir):
            Path(directory).mkdir()
        failures = 0
        with build_services(settings) as services:
            services.deployments.environ["DATABASE_URL"] = database_url

            def part(label: str, run: Callable[[], str]) -> None:
                nonlocal failures
                try:
                    detail = run()
                except (WarroomError, AssertionError) as exc:
                    failures += 1
                    message = escape(str(getattr(exc, "message", exc)))
                    result(f"[bold red]FAIL[/] {label}: {message}")
                else:
                    result(f"[bold green]PASS[/] {label}: {escape(detail)}")

            part("workflow checkpoint", lambda: _workflow(services))
            part(
                "database backup",
                lambda: f"{services.backups.create(name='selftest').size_stored} bytes stored",
            )
            part(
                "verify",
                lambda: f"{services.backups.verify('selftest').parts_checked} parts intact",
            )
            part(
                "restore into a scratch database",
                lambda: (
                    f"{services.backups.verify('selftest', restore_test=True).tables_checked} "
                    "tables, row counts match"
                ),
            )
            part("deployment validation", lambda: _validation(services))
        result(
            f"{'all parts passed' if not failures else f'{failures} part(s) failed'} "
            f"(database: {services.backups._engine(database_url).display})"
        )
        if failures:
            raise typer.Exit(1)


def _validation(services: Services) -> str:
    report = services.deployments.validate()
    problems = [f"{r.name}: {r.message}" for r in report.blocking if r.name != "backups"]
    if problems:
        raise AssertionError("; ".join(problems))
    return f"{len(report.results)} checks ran"
