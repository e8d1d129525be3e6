"""The workflow commands, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.e2e.cli import cli_env, run_warroom

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
