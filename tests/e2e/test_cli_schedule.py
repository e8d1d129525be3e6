"""Scheduling, status and cleanup from the command line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.e2e.cli import cli_env, run_warroom


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
    return cli_env(tmp_path, DATABASE_URL=f"sqlite:///{db}", **extra)


def test_schedule_status_and_cleanup(tmp_path: Path) -> None:
    env = _env(tmp_path)
    listed = run_warroom("schedule", "list", "--json", env=env, cwd=tmp_path)
    assert listed.code == 0, listed.stderr
    jobs = {job["job"]: job for job in listed.json()["jobs"]}
    assert jobs["database-backup"]["schedule"] == "0 3 * * *"
    assert jobs["cleanup"]["schedule"] == "0 2 * * *" and jobs["cleanup"]["last_run"] is None

    unhealthy = run_warroom("status", env=env, cwd=tmp_path)
    assert unhealthy.code == 1 and "has no intact backup" in unhealthy.stdout
    assert run_warroom("create", "database", env=env, cwd=tmp_path).code == 0
    healthy = run_warroom("status", "--json", env=env, cwd=tmp_path)
    assert healthy.code == 0 and healthy.json()["healthy"]

    plan = run_warroom("cleanup", "--days", "0", "--dry-run", "--json", env=env, cwd=tmp_path)
    assert plan.code == 0
    (source,) = plan.json()["database"]["sources"]
    assert source["keep"][0]["reason"] == "the newest intact backup of its source"
    human = run_warroom("cleanup", "--days", "0", "--dry-run", env=env, cwd=tmp_path)
    assert human.code == 0
    assert human.stdout.splitlines()[:2] == [
        f"source {source['label']} (id {source['source']})",
        f"  keep {source['keep'][0]['name']}: the newest intact backup of its source",
    ]


def test_invalid_schedule_is_refused_at_start(tmp_path: Path) -> None:
    env = _env(tmp_path, DATABASE_CHECKPOINT_SCHEDULE="61 3 * * *")
    result = run_warroom("scheduler", "--once", env=env, cwd=tmp_path)
    assert result.code == 2
    assert "invalid cron expression '61 3 * * *'" in result.stderr
