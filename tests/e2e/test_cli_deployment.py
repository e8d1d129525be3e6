"""Deployment commands and the seed's scripts, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.e2e.cli import cli_env, run_warroom

ROOT = Path(__file__).resolve().parents[2]

TOML = """
[deployment]
env = { required = ["APP_SECRET"] }
storage = { min_free_mb = 1 }
backups = { max_age_hours = 1 }

[[deployment.commands]]
name = "lint"
command = "{lint}"

[deployment.deploy]
rollback_command = "sh -c 'echo $0 > rolled-back' {previous_version}"
"""


def _setup(tmp_path: Path, lint: str = "true") -> dict[str, str]:
    (tmp_path / "warroom.toml").write_text(TOML.replace("{lint}", lint))
    for name in ("backups", "checkpoints"):
        (tmp_path / name).mkdir(exist_ok=True)
    db = tmp_path / "app.db"
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sqlite3; sqlite3.connect('{db}').execute('CREATE TABLE t (x)')",
        ],
        check=True,
    )
    return cli_env(tmp_path, APP_SECRET="hunter2-secret", DATABASE_URL=f"sqlite:///{db}")


def test_create_deployment_reports_and_records(tmp_path: Path) -> None:
    env = _setup(tmp_path, lint="false")
    result = run_warroom(
        "create",
        "deployment",
        "--version",
        "1.4.0",
        "--json",
        "--junit",
        "report.xml",
        env=env,
        cwd=tmp_path,
    )
    assert result.code == 1
    document = result.json()
    checks = {c["name"]: c["status"] for c in document["checks"]}
    assert checks["command:lint"] == "failed" and checks["env:APP_SECRET"] == "passed"
    assert checks["backups"] == "failed"  # no database checkpoint yet
    assert "hunter2-secret" not in result.stdout + result.stderr
    suite = ET.parse(tmp_path / "report.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "2"

    made = run_warroom("create", "all", "--version", "1.4.0", env=env, cwd=tmp_path)
    assert made.code == 1 and "created database checkpoint" in made.stdout  # lint still fails
    listed = run_warroom("list", "--type", "deployment", "--json", env=env, cwd=tmp_path)
    assert [c["status"] for c in listed.json()["checkpoints"]] == ["failed", "failed"]
    assert listed.json()["checkpoints"][0]["details"]["version"] == "1.4.0"
    assert "hunter2-secret" not in listed.stdout


def test_deploy_and_automatic_rollback(tmp_path: Path) -> None:
    env = _setup(tmp_path)
    assert run_warroom("create", "database", env=env, cwd=tmp_path).code == 0
    first = run_warroom(
        "deploy", "--version", "1.0", "--json", "--", "sh", "-c", "exit 0", env=env, cwd=tmp_path
    )
    assert first.code == 0, first.stderr
    assert first.json()["status"] == "succeeded"
    second = run_warroom(
        "deploy", "--version", "2.0", "--json", "--", "sh", "-c", "exit 7", env=env, cwd=tmp_path
    )
    assert second.code == 1
    assert second.json()["status"] == "rolled_back"
    assert second.json()["stages"]["deploy"]["exit_code"] == 7
    assert (tmp_path / "rolled-back").read_text().strip() == "1.0"
    missing = run_warroom("deploy", "--version", "bad version", "--", "true", env=env, cwd=tmp_path)
    assert missing.code == 2 and "invalid version" in missing.stderr


def test_seed_scripts(tmp_path: Path) -> None:
    env = _setup(tmp_path)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"

    def script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ROOT / "scripts" / name), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )

    selftest = script("test-checkpoints.sh")
    assert selftest.returncode == 0, selftest.stderr
    lines = [line for line in selftest.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(lines) == 5 and all(line.startswith("PASS") for line in lines)
    deployment = script("create-checkpoint.sh", "deployment")
    assert deployment.returncode == 1 and "backups" in deployment.stdout  # no backup yet
    everything = script("create-checkpoint.sh", "all")
    assert everything.returncode == 1, everything.stderr  # validated before the backup
    again = script("create-checkpoint.sh", "deployment")
    assert again.returncode == 0, again.stdout + again.stderr
