"""The seed's six routes, called exactly as the spec writes them, with curl, against a real
``warroom serve``: the same paths, the same bodies, and no body where the spec shows none."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.e2e.cli import cli_env, run_warroom
from tests.e2e.server import Server, running_server


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Seed:
    server: Server
    tokens: dict[str, str]
    database_url: str

    def curl(self, *args: str, role: str = "admin") -> Answer:
        """``curl [-X METHOD] -H "Authorization: Bearer $TOKEN" [-d JSON] URL``, as the spec."""
        *options, path = args
        done = subprocess.run(
            [
                "curl",
                "-sS",
                "-D",
                "-",
                "-H",
                f"Authorization: Bearer {self.tokens[role]}",
                *options,
                f"{self.server.url}{path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        head, _, body = done.stdout.partition("\n\n")  # text mode: \r\n read as \n
        status_line, *header_lines = head.split("\n")
        headers = {
            name.lower(): value for name, value in (line.split(": ", 1) for line in header_lines)
        }
        return Answer(int(status_line.split()[1]), json.loads(body) if body else None, headers)

    def post_json(self, path: str, body: dict[str, Any], role: str = "admin") -> Answer:
        """``curl -X POST -H "Content-Type: application/json" -d BODY URL``, as the spec."""
        return self.curl(
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps(body),
            path,
            role=role,
        )

    def finished(self, answer: Answer) -> dict[str, Any]:
        """The job a 202 answer started (200: it had finished already), once it has finished."""
        assert answer.status in (200, 202), answer.body
        job = answer.body
        while job["status"] not in ("succeeded", "failed"):
            time.sleep(0.1)
            job = self.curl(answer.headers["location"]).body
        return dict(job)


@contextmanager
def _serve(workdir: Path, **env: str) -> Iterator[Seed]:
    """A server over ``workdir`` with a token for each role."""
    tokens = {}
    environment = cli_env(workdir, WARROOM_SCHEDULER="false", **env)  # no catch-up backup
    for role in ("viewer", "operator", "admin"):
        made = run_warroom(
            "token", "create", "--role", role, "--name", role, env=environment, cwd=workdir
        )
        tokens[role] = made.stdout.strip()
    with running_server(environment, workdir) as server:
        yield Seed(server, tokens, env.get("DATABASE_URL", ""))


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seed]:
    name = create_pg_database("wrt_seed")
    with psycopg.connect(pg_url(name), autocommit=True) as conn:
        conn.execute("CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 100) g")
    try:
        with _serve(tmp_path_factory.mktemp("seed"), DATABASE_URL=pg_url(name)) as served:
            yield served
    finally:
        drop_pg_database(name)


def _rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM orders").fetchone()
    assert row is not None
    return int(row[0])


def test_create_workflow_checkpoint(seed: Seed) -> None:
    body = {"execution_id": "string", "step_id": "string", "state": {}, "metadata": {}}
    answer = seed.post_json("/api/v1/checkpoints/workflow", body, role="operator")
    assert answer.status == 201, answer.body
    assert answer.body["execution_id"] == "string" and answer.body["name"] == "string"


def test_create_database_backup_with_and_without_a_name(seed: Seed) -> None:
    named = seed.post_json("/api/v1/checkpoints/database", {"checkpoint_name": "my-backup"})
    job = seed.finished(named)
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["name"] == "my-backup"
    unnamed = seed.finished(seed.curl("-X", "POST", "/api/v1/checkpoints/database"))
    assert unnamed["status"] == "succeeded" and unnamed["result"]["name"].startswith("db-")


def test_run_deployment_validation(seed: Seed) -> None:
    answer = seed.curl("-X", "POST", "/api/v1/checkpoints/deployment", role="operator")
    assert answer.status == 200 and answer.body["name"].startswith("validation-")
    assert {"passed", "checks"} <= set(answer.body)


@pytest.mark.parametrize("type_", ["workflow", "database", "deployment"])
def test_list_checkpoints(seed: Seed, type_: str) -> None:
    answer = seed.curl(f"/api/v1/checkpoints/list?type={type_}", role="viewer")
    assert answer.status == 200
    assert {row["type"] for row in answer.body["checkpoints"]} <= {type_}
    assert seed.curl("/api/v1/checkpoints/list", role="viewer").status == 200


def test_restore_with_no_body_restores_over_the_configured_database(seed: Seed) -> None:
    backup = seed.finished(
        seed.post_json("/api/v1/checkpoints/database", {"checkpoint_name": "pre-change"})
    )
    assert backup["status"] == "succeeded", backup
    with psycopg.connect(seed.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO orders SELECT g FROM generate_series(101, 150) g")

    for role in ("viewer", "operator"):
        refused = seed.curl(
            "-X", "POST", "/api/v1/checkpoints/restore/database/pre-change", role=role
        )
        assert refused.status == 403, refused.body
    job = seed.finished(seed.curl("-X", "POST", "/api/v1/checkpoints/restore/database/pre-change"))
    assert job["status"] == "succeeded", job
    assert _rows(seed.database_url) == 100
    safety = job["result"]["safety_backup"]  # taken first, of the 150 rows it replaced
    shown = seed.curl(f"/api/v1/checkpoints/database/{safety}", role="viewer")
    assert shown.status == 200 and shown.body["tables"] == {"public.orders": 150}


def test_restore_of_an_unknown_name_is_404(seed: Seed) -> None:
    answer = seed.curl("-X", "POST", "/api/v1/checkpoints/restore/database/no-such-backup")
    assert answer.status == 404
    assert "no database checkpoint named 'no-such-backup'" in answer.body["error"]["message"]


def test_restore_body_chooses_a_new_database(seed: Seed, pg_names: list[str]) -> None:
    seed.finished(seed.post_json("/api/v1/checkpoints/database", {"checkpoint_name": "for-copy"}))
    pg_names.append("wrt_seed_copy")
    job = seed.finished(
        seed.post_json("/api/v1/checkpoints/restore/database/for-copy", {"new_db": "wrt_seed_copy"})
    )
    assert job["status"] == "succeeded" and job["result"]["safety_backup"] is None, job
    assert _rows(pg_url("wrt_seed_copy")) == 100


def test_cleanup(seed: Seed) -> None:
    job = seed.finished(seed.curl("-X", "DELETE", "/api/v1/checkpoints/cleanup?days=7"))
    assert job["status"] == "succeeded", job
    assert {"database", "workflow", "deployment"} <= set(job["result"])


def test_restore_without_a_configured_database_is_400(tmp_path: Path, pg_db: str) -> None:
    made = run_warroom(
        "create",
        "database",
        "--url",
        pg_db,
        "--name",
        "elsewhere",
        env=cli_env(tmp_path),
        cwd=tmp_path,
    )
    assert made.code == 0, made.stderr
    with _serve(tmp_path) as seed:  # no DATABASE_URL
        answer = seed.curl("-X", "POST", "/api/v1/checkpoints/restore/database/elsewhere")
    assert answer.status == 400, answer.body
    assert answer.body["error"]["message"] == (
        "no database is configured to restore into: set DATABASE_URL for the service"
    )
