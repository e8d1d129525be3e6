"""The CLI's conventions, as pgBackRest, kubectl and gh have them: results on stdout, progress and
diagnostics on stderr, ``--quiet``, the README's exit codes everywhere, help rendered as written,
unique-prefix ids; and the seed's scripts from any directory."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tests.e2e.cli import cli_env, run_warroom
from warroom.cli.app import app
from warroom.cli.render import progress_line
from warroom.config import Settings
from warroom.workflow import AutomationEngine

ROOT = Path(__file__).resolve().parents[2]


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and subcommand, by its path (typer's own click: no isinstance on click)."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


@pytest.mark.parametrize(
    "path", [path for path, _ in COMMANDS], ids=lambda path: " ".join(path) or "warroom"
)
def test_every_help_renders_as_written(path: tuple[str, ...]) -> None:
    command = dict(COMMANDS)[path]
    rendered = CliRunner().invoke(app, [*path, "--help"], terminal_width=100)
    assert rendered.exit_code == 0, rendered.output
    text = rendered.output
    assert "<bool>" not in text and "[/" not in text and "[bold" not in text
    written = " ".join(
        [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    )
    for bracketed in re.findall(r"\[[a-z][\w.-]*\]", written):  # e.g. [deployment]
        assert bracketed in text, (bracketed, text)


def test_create_deployment_help_keeps_its_section_name() -> None:
    text = CliRunner().invoke(app, ["create", "deployment", "--help"]).output
    assert "checks from [deployment] in warroom.toml" in " ".join(text.split())


def test_progress_shows_percentage_and_time_left() -> None:
    line = progress_line("verifying nightly", 256 << 20, 1 << 30, 4.0)
    assert line == "verifying nightly: 256.0 MiB of 1.0 GiB (25%), 64.0 MiB/s, 12s left"
    assert progress_line("backing up", 1 << 20, None, 1.0) == "backing up: 1.0 MiB (1.0 MiB/s)"


def _sqlite_env(tmp_path: Path) -> dict[str, str]:
    database = tmp_path / "app.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items (name) VALUES (?)", [(f"n{i}",) for i in range(50)])
    return cli_env(tmp_path, DATABASE_URL=f"sqlite:///{database}")


def test_results_on_stdout_progress_on_stderr_and_quiet(tmp_path: Path) -> None:
    env = _sqlite_env(tmp_path)
    created = run_warroom("create", "database", "--name", "one", env=env, cwd=tmp_path)
    assert created.code == 0, created.stderr
    assert created.stdout.startswith("created database checkpoint one of sqlite:")
    assert "backing up" in created.stderr and "created" not in created.stderr

    quiet = run_warroom("-q", "verify", "one", env=env, cwd=tmp_path)
    assert quiet.code == 0 and quiet.stderr == "" and "one: intact" in quiet.stdout

    as_json = run_warroom("verify", "one", "--json", env=env, cwd=tmp_path)
    assert as_json.json()["status"] == "checked" and "verifying one" in as_json.stderr


def test_exit_codes(tmp_path: Path) -> None:
    env = _sqlite_env(tmp_path)
    bad_name = run_warroom("create", "database", "--name", "../x", env=env, cwd=tmp_path)
    assert bad_name.code == 2 and "invalid checkpoint name" in bad_name.stderr

    missing = run_warroom("verify", "nope", env=env, cwd=tmp_path)
    assert missing.code == 2 and "no database checkpoint named 'nope'" in missing.stderr

    assert run_warroom("create", "database", "--name", "two", env=env, cwd=tmp_path).code == 0
    [part] = [
        p
        for p in (tmp_path / "backups" / "database" / "two").iterdir()
        if p.is_file() and p.name != "manifest.json"
    ][:1]
    damaged = bytearray(part.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    part.write_bytes(bytes(damaged))
    integrity = run_warroom("verify", "two", env=env, cwd=tmp_path)
    assert integrity.code == 3 and "damaged" in integrity.stderr, integrity.stderr


@pytest.mark.postgres
def test_an_existing_new_db_name_is_bad_input(tmp_path: Path, pg_db: str) -> None:
    env = cli_env(tmp_path, DATABASE_URL=pg_db)
    assert run_warroom("create", "database", "--name", "b", env=env, cwd=tmp_path).code == 0
    existing = pg_db.rsplit("/", 1)[1]
    refused = run_warroom("restore", "database", "b", "--new-db", existing, env=env, cwd=tmp_path)
    assert refused.code == 2, refused.stderr
    assert f"{existing} already exists" in refused.stderr and "--new-db" in refused.stderr


def test_serve_on_a_busy_port_exits_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_warroom("serve", "--port", str(port), env=cli_env(tmp_path), cwd=tmp_path)
    assert result.code == 2, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in result.stderr


def test_execution_ids_by_unique_prefix(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    catalog = tmp_path / "catalog.db"
    settings = Settings(catalog_url=f"sqlite:///{catalog}", checkpoint_dir=tmp_path / "checkpoints")
    with AutomationEngine(settings=settings) as engine:

        @engine.workflow("noop")
        def noop() -> int:
            return 1

        for execution_id in ("nightly-0001", "nightly-0002", "weekly-0001"):
            engine.execute_workflow("noop", execution_id=execution_id)

    shown = run_warroom("workflow", "show", "weekly", env=env, cwd=tmp_path)
    assert shown.code == 0 and shown.stdout.startswith("weekly-0001 (noop): succeeded")
    ambiguous = run_warroom("workflow", "show", "nightly", env=env, cwd=tmp_path)
    assert ambiguous.code == 2
    assert "'nightly' is ambiguous: it matches nightly-0001, nightly-0002" in ambiguous.stderr
    unknown = run_warroom("workflow", "cancel", "rw-1", env=env, cwd=tmp_path)
    assert unknown.code == 2
    assert f"no workflow execution 'rw-1' in catalog {catalog}" in unknown.stderr


DEPLOY_TOML = """
[deployment]
env = { required = [] }
storage = { min_free_mb = 1 }
"""


def test_deploy_prints_each_stage_once_and_keeps_no_tag_of_a_failed_deploy(tmp_path: Path) -> None:
    env = {
        **_sqlite_env(tmp_path),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    (tmp_path / "warroom.toml").write_text(DEPLOY_TOML)
    (tmp_path / "checkpoints").mkdir()
    for args in (["init", "-q"], ["add", "warroom.toml"], ["commit", "-qm", "first"]):
        subprocess.run(["git", *args], cwd=tmp_path, env=env, check=True)
    assert run_warroom("create", "database", env=env, cwd=tmp_path).code == 0

    failed = run_warroom("deploy", "--version", "1.0", "--", "false", env=env, cwd=tmp_path)
    assert failed.code == 1, failed.stdout + failed.stderr
    stages = [line.split(":", 1)[0] for line in failed.stdout.splitlines() if ": " in line]
    for stage in ("validate", "backup", "tag", "deploy", "untag", "rollback"):
        assert stages.count(stage) == 1, failed.stdout
    assert "deploy: failed (exited with 1)" in failed.stdout
    assert "untag: passed (removed deploy-1.0: the deploy failed)" in failed.stdout
    assert "rollback: skipped (no rollback_command configured)" in failed.stdout
    tags = subprocess.run(["git", "tag"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert tags.stdout == ""

    shipped = run_warroom("deploy", "--version", "1.1", "--", "true", env=env, cwd=tmp_path)
    assert shipped.code == 0, shipped.stdout + shipped.stderr
    tags = subprocess.run(["git", "tag"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert tags.stdout == "deploy-1.1\n"


def _script(
    path: Path, cwd: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(path), *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_seed_scripts_from_any_directory(tmp_path: Path) -> None:
    env = _sqlite_env(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env["PATH"] = "/usr/bin:/bin"  # no .venv/bin: the project's ./.venv is found
    selftest = _script(ROOT / "scripts" / "test-checkpoints.sh", elsewhere, env)
    assert selftest.returncode == 0, selftest.stderr
    assert selftest.stdout.count("PASS") == 5  # results on stdout: 2>/dev/null shows them
    usage = _script(ROOT / "scripts" / "create-checkpoint.sh", elsewhere, env)
    assert usage.returncode == 2 and "usage:" in usage.stderr and "not found" not in usage.stderr

    # A copy of the project without .venv: warroom from PATH, else a clear exit 2.
    copy = tmp_path / "project"
    shutil.copytree(ROOT / "scripts", copy / "scripts")
    on_path = {**env, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    made = _script(copy / "scripts" / "create-checkpoint.sh", elsewhere, on_path, "database")
    assert made.returncode == 0 and "created database checkpoint" in made.stdout, made.stderr
    nowhere = _script(copy / "scripts" / "create-checkpoint.sh", elsewhere, env, "database")
    assert nowhere.returncode == 2 and "warroom is not installed" in nowhere.stderr
    assert os.access(ROOT / "scripts" / "railway-deploy.sh", os.X_OK)
