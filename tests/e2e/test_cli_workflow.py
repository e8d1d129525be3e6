"""The workflow commands, run as a user runs them."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.e2e.cli import cli_env, run_warroom, warroom_command

JOBS = textwrap.dedent(
    """
    import os
    from warroom import AutomationEngine

    engine = AutomationEngine()

    @engine.step()
    def extract():
        with open("extract.log", "a") as log:
            log.write("ran\\n")
        return [1, 2]

    @engine.step()
    def load(rows):
        if not os.path.exists("fixed"):
            raise RuntimeError("target table locked")
        return sum(rows)

    @engine.workflow("etl")
    def etl():
        return load(extract())

    if __name__ == "__main__":
        print(engine.execute_workflow("etl", execution_id="etl-1"))
    """
)


def test_list_show_resume_cancel(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    (tmp_path / "jobs.py").write_text(JOBS)
    subprocess.run(
        [sys.executable, "jobs.py"], env=env, cwd=tmp_path, check=True, capture_output=True
    )

    listed = run_warroom("list", "--type", "workflow", "--json", env=env, cwd=tmp_path)
    [row] = listed.json()["checkpoints"]
    assert (row["name"], row["status"], row["source"]) == ("etl-1", "failed", "etl")

    shown = run_warroom("workflow", "show", "etl-1", "--json", env=env, cwd=tmp_path).json()
    assert [(s["name"], s["status"]) for s in shown["steps"]] == [
        ("extract", "succeeded"),
        ("load", "failed"),
    ]
    assert "target table locked" in shown["error"]

    no_app = run_warroom("workflow", "resume", "etl-1", "--app", "jobs", env=env, cwd=tmp_path)
    assert no_app.code == 2 and "module:attribute" in no_app.stderr

    (tmp_path / "fixed").touch()
    resumed = run_warroom(
        "workflow", "resume", "etl-1", "--app", "jobs:engine", "--json", env=env, cwd=tmp_path
    )
    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["result"] == 3
    assert (tmp_path / "extract.log").read_text() == "ran\n"  # not run again

    cancelled = run_warroom("workflow", "cancel", "etl-1", env=env, cwd=tmp_path)
    assert cancelled.code == 0 and "succeeded" in cancelled.stdout
    missing = run_warroom("workflow", "show", "nope", env=env, cwd=tmp_path)
    assert missing.code == 2 and "no workflow execution 'nope'" in missing.stderr


def test_fork_run_by_a_worker_and_the_workers_listing(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    (tmp_path / "jobs.py").write_text(JOBS)
    subprocess.run(
        [sys.executable, "jobs.py"], env=env, cwd=tmp_path, check=True, capture_output=True
    )
    forked = run_warroom(
        "workflow", "fork", "etl-1", "--from-step", "1", "--json", env=env, cwd=tmp_path
    )
    assert forked.code == 0, forked.stderr
    fork_id = forked.json()["execution_id"]
    (tmp_path / "fixed").touch()
    worker = subprocess.Popen(
        warroom_command("worker", "--app", "jobs:engine", "--concurrency", "2"),
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(1200):
            shown = run_warroom("workflow", "show", fork_id, "--json", env=env, cwd=tmp_path)
            if shown.json()["status"] == "succeeded":
                break
        assert shown.json()["result"] == 3
        live = run_warroom("workflow", "workers", "--json", env=env, cwd=tmp_path).json()
        assert [w["state"] for w in live["workers"]] == ["running"]
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert (tmp_path / "extract.log").read_text() == "ran\n"  # replayed in the fork, not run
    listed = run_warroom("workflow", "workers", env=env, cwd=tmp_path)
    assert "stopped" in listed.stdout and "0/2" in listed.stdout
