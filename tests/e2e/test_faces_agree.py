"""The CLI's ``--json`` and the API give the same document for the list and the status: both
faces call one function of :mod:`warroom.app`, so they cannot disagree."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cli import cli_env, run_warroom
from tests.e2e.inprocess import in_process_api


def _at_rest(document: Any) -> Any:
    """The document without what moves between two calls: ages (from the clock) and the free
    space of a shared filesystem."""
    if isinstance(document, list):
        return [_at_rest(item) for item in document]
    if isinstance(document, dict):
        return {
            key: None if key in ("age_hours", "free_bytes") else _at_rest(value)
            for key, value in document.items()
        }
    return document


@pytest.fixture
def workdir(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A configured SQLite database with a restore-tested backup, a second backup and the
    backup of another database (so there are two sources)."""
    for name in ("app.db", "other.db"):
        with sqlite3.connect(tmp_path / name) as conn:
            conn.execute("CREATE TABLE t (x)")
            conn.execute("INSERT INTO t VALUES (1), (2)")
    env = cli_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path}/app.db")
    for args in (
        ("create", "database", "--name", "first"),
        ("verify", "first", "--restore-test"),
        ("create", "database", "--name", "second"),
        ("create", "database", "--name", "elsewhere", "--url", f"sqlite:///{tmp_path}/other.db"),
    ):
        done = run_warroom(*args, env=env, cwd=tmp_path)
        assert done.code == 0, done.stderr
    return tmp_path, env


@pytest.mark.parametrize(
    ("command", "path"),
    [
        (("list",), "/api/v1/checkpoints/list"),
        (("list", "--type", "database"), "/api/v1/checkpoints/list?type=database"),
        (("list", "--status", "restore-tested"), "/api/v1/checkpoints/list?status=restore-tested"),
        (("status",), "/api/v1/status"),
    ],
    ids=["list", "list-database", "list-restore-tested", "status"],
)
def test_cli_json_and_api_give_one_document(
    workdir: tuple[Path, dict[str, str]], command: tuple[str, ...], path: str
) -> None:
    tmp_path, env = workdir
    shown = run_warroom(*command, "--json", env=env, cwd=tmp_path)
    assert shown.stdout, shown.stderr
    with in_process_api(tmp_path, database_url=env["DATABASE_URL"]) as api:
        answer = api.call("GET", path, token=api.tokens["viewer"])
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["sources"]) >= 1  # the document is not trivially empty
    assert _at_rest(shown.json()) == _at_rest(answer.json())
