"""The REST API over real HTTP against a running ``warroom serve`` (catalog on SQLite and on
the real PostgreSQL)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest

from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.e2e.cli import cli_env
from tests.e2e.server import Server, running_server
from warroom.auth import TokenStore
from warroom.catalog import open_catalog
from warroom.catalog.schema import jobs

JWT_SECRET = "platform-shared-secret-for-tests-0123456789"


@dataclass
class Api:
    server: Server
    tokens: dict[str, str]
    database: str
    stale_job: str
    catalog_url: str

    def as_(self, role: str | None) -> Any:
        return self.server.client(self.tokens[role] if role else None)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    workdir = tmp_path_factory.mktemp(f"api-{request.param}")
    database = create_pg_database("wrt_api_data")
    catalog_db = create_pg_database("wrt_api_catalog") if request.param == "postgresql" else None
    catalog_url = pg_url(catalog_db) if catalog_db else f"sqlite:///{workdir}/catalog.db"
    with psycopg.connect(pg_url(database), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE accounts AS SELECT g AS id, md5(g::text) AS owner "
            "FROM generate_series(1, 2000) g"
        )
    catalog = open_catalog(catalog_url)
    tokens = {
        role: TokenStore(catalog).create(f"{role}-bot", role)[1]
        for role in ("viewer", "operator", "admin")
    }
    stale_job = uuid.uuid4().hex  # a job a dead replica left running
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with catalog.transaction() as conn:
        conn.execute(
            jobs.insert().values(
                id=stale_job,
                kind="backup",
                status="running",
                params={"checkpoint_name": None},
                owner="dead-replica",
                created_at=long_ago,
                heartbeat_at=long_ago,
            )
        )
    catalog.close()
    env = cli_env(
        workdir,
        DATABASE_URL=pg_url(database),
        WARROOM_JWT_SECRET=JWT_SECRET,
        WARROOM_MAX_BODY_BYTES="65536",
    )
    env["WARROOM_CATALOG_URL"] = catalog_url
    try:
        with running_server(env, workdir) as server:
            yield Api(server, tokens, database, stale_job, catalog_url)
    finally:
        drop_pg_database(database)
        if catalog_db:
            drop_pg_database(catalog_db)


def _wait_job(client: Any, location: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = client.get(location).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError("job did not finish")


ROUTES = [  # method, path, body, least role
    ("GET", "/api/v1/checkpoints/list", None, "viewer"),
    ("GET", "/api/v1/checkpoints/list?type=database", None, "viewer"),
    (
        "POST",
        "/api/v1/checkpoints/workflow",
        {"execution_id": "ext-roles", "step_id": "s", "state": {}},
        "operator",
    ),
    ("POST", "/api/v1/checkpoints/deployment", None, "operator"),
    ("GET", "/api/v1/workflows/executions", None, "viewer"),
    ("GET", "/api/v1/audit", None, "admin"),
    ("DELETE", "/api/v1/checkpoints/cleanup?dry_run=true&wait=true", None, "admin"),
    ("POST", "/api/v1/checkpoints/database/nope/verify", None, "admin"),
    ("POST", "/api/v1/checkpoints/restore/database/nope", {"new_db": "x"}, "admin"),
    ("GET", "/api/v1/whoami", None, "viewer"),
    ("GET", "/api/v1/schedules", None, "viewer"),
    ("GET", "/api/v1/deployments", None, "viewer"),
    ("GET", "/api/v1/tokens", None, "admin"),
    ("POST", "/api/v1/tokens/nope/revoke", None, "admin"),
]


@pytest.mark.parametrize(("method", "path", "body", "least"), ROUTES)
def test_every_route_checks_the_role(
    api: Api, method: str, path: str, body: Any, least: str
) -> None:
    order = ["viewer", "operator", "admin"]
    with api.as_(None) as anonymous:
        response = anonymous.request(method, path, json=body)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthorized"
    for role in order:
        with api.as_(role) as client:
            response = client.request(method, path, json=body)
        allowed = order.index(role) >= order.index(least)
        if allowed:
            assert response.status_code not in (401, 403), (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            assert f"needs the {least} role" in response.json()["error"]["message"]


def test_backup_and_restore_jobs_end_to_end(api: Api) -> None:
    name = f"api-{uuid.uuid4().hex[:8]}"
    with api.as_("admin") as admin:
        started = admin.post("/api/v1/checkpoints/database", json={"checkpoint_name": name})
        assert started.status_code == 202
        job = _wait_job(admin, started.headers["location"])
        assert job["status"] == "succeeded", job
        assert job["result"]["tables"] == {"public.accounts": 2000}

        again = admin.post("/api/v1/checkpoints/database", json={"checkpoint_name": name})
        assert again.status_code == 409 and "already exists" in again.text

        shown = admin.get(f"/api/v1/checkpoints/database/{name}").json()
        assert shown["name"] == name and shown["status"] == "completed"

        verified = admin.post(
            f"/api/v1/checkpoints/database/{name}/verify?wait=true", json={"restore_test": True}
        )
        assert verified.status_code == 200 and verified.json()["result"]["restore_tested"]

        new_db = f"wrt_api_restored_{uuid.uuid4().hex[:6]}"
        try:
            both = admin.post(
                f"/api/v1/checkpoints/restore/database/{name}",
                json={"new_db": new_db, "target": "configured"},
            )
            assert both.status_code == 400 and "not both" in both.text
            restored = admin.post(
                f"/api/v1/checkpoints/restore/database/{name}?wait=true", json={"new_db": new_db}
            )
            assert restored.status_code == 200, restored.text
            assert restored.json()["result"]["rows"] == 2000
            with psycopg.connect(pg_url(new_db)) as conn:
                assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (2000,)
        finally:
            drop_pg_database(new_db)


def test_external_executions_are_completed_failed_or_cancelled(api: Api) -> None:
    ids = {
        action: f"ext-{action}-{uuid.uuid4().hex[:8]}" for action in ("complete", "fail", "cancel")
    }
    bodies = {"complete": {"result": {"rows": 9}}, "fail": {"error": "disk full"}, "cancel": None}
    with api.as_("viewer") as viewer:
        refused = viewer.post(f"/api/v1/checkpoints/workflow/{ids['cancel']}/cancel")
        assert refused.status_code == 403
    with api.as_("operator") as operator:
        for action, execution in ids.items():
            body = {"execution_id": execution, "step_id": "s", "state": {}}
            assert operator.post("/api/v1/checkpoints/workflow", json=body).status_code == 201
            ended = operator.post(
                f"/api/v1/checkpoints/workflow/{execution}/{action}", json=bodies[action]
            )
            assert ended.status_code == 200, ended.text
        statuses = {
            action: operator.get(f"/api/v1/checkpoints/workflow/{execution}").json()
            for action, execution in ids.items()
        }
        assert [statuses[a]["status"] for a in ids] == ["succeeded", "failed", "cancelled"]
        assert statuses["complete"]["result"] == {"rows": 9}
        assert statuses["fail"]["error"] == "disk full"
        again = operator.post(f"/api/v1/checkpoints/workflow/{ids['complete']}/fail", json={})
        assert again.status_code == 409


def test_workflow_checkpoints_for_external_processes(api: Api) -> None:
    execution = f"ext-{uuid.uuid4().hex[:8]}"
    with api.as_("operator") as operator:
        for step, state in (("download", {"files": 3}), ("transform", {"rows": 10})):
            response = operator.post(
                "/api/v1/checkpoints/workflow",
                json={
                    "execution_id": execution,
                    "step_id": step,
                    "state": state,
                    "metadata": {"host": "worker-1"},
                },
            )
            assert response.status_code == 201, response.text
        conflict = operator.post(
            "/api/v1/checkpoints/workflow",
            json={"execution_id": execution, "step_id": "download", "state": {"files": 4}},
        )
        assert conflict.status_code == 409
        shown = operator.get(f"/api/v1/checkpoints/workflow/{execution}").json()
        assert [(c["name"], c["state"]) for c in shown["checkpoints"]] == [
            ("download", {"files": 3}),
            ("transform", {"rows": 10}),
        ]
        cancelled = operator.post(f"/api/v1/workflows/executions/{execution}/cancel")
        assert cancelled.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("POST", "/api/v1/checkpoints/workflow", b"{not json", 422, "body"),
        (
            "POST",
            "/api/v1/checkpoints/workflow",
            {"execution_id": 5, "step_id": "s"},
            422,
            "execution_id",
        ),
        (
            "POST",
            "/api/v1/checkpoints/workflow",
            {"execution_id": "../etc", "step_id": "s"},
            422,
            "execution_id",
        ),
        ("GET", "/api/v1/checkpoints/list?type=backups", None, 422, "type"),
        ("GET", "/api/v1/checkpoints/snapshots/x", None, 422, "type"),
        (
            "POST",
            "/api/v1/checkpoints/database",
            {"checkpoint_name": "../../etc"},
            422,
            "checkpoint_name",
        ),
        (
            "POST",
            "/api/v1/checkpoints/database",
            {"checkpoint_name": "x", "extra": 1},
            422,
            "extra",
        ),
        ("POST", "/api/v1/checkpoints/database/..%2F..%2Fetc/verify", None, 404, "no route"),
        ("POST", "/api/v1/checkpoints/database/..etc/verify", None, 422, "name"),
        ("GET", "/api/v1/checkpoints/database/no-such-backup", None, 404, None),
        ("GET", "/api/v1/jobs/" + "0" * 32, None, 404, None),
        ("DELETE", "/api/v1/checkpoints/cleanup?days=-1", None, 422, "days"),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    api: Api, method: str, path: str, body: Any, status: int, field: str | None
) -> None:
    with api.as_("admin") as admin:
        if isinstance(body, bytes):
            response = admin.request(
                method, path, content=body, headers={"content-type": "application/json"}
            )
        else:
            response = admin.request(method, path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    if field:
        assert field in error["message"]


def test_oversized_body_is_refused(api: Api) -> None:
    state = {"blob": "x" * 70_000}
    with api.as_("operator") as operator:
        response = operator.post(
            "/api/v1/checkpoints/workflow",
            json={"execution_id": "too-big", "step_id": "s", "state": state},
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"

    def chunks() -> Any:  # no Content-Length: the limit is enforced while reading
        yield b'{"execution_id": "too-big", "step_id": "s", "state": "'
        for _ in range(10):
            yield b"x" * 10_000
        yield b'"}'

    with api.as_("operator") as operator:
        streamed = operator.post(
            "/api/v1/checkpoints/workflow",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
    assert streamed.status_code == 413, streamed.text
    assert streamed.json()["error"]["code"] == "body_too_large"


def test_jwts(api: Api) -> None:
    def token(role: str, minutes: int = 5, key: str = JWT_SECRET) -> str:
        claims = {
            "sub": "deploy-bot",
            "role": role,
            "aud": "warroom",
            "exp": datetime.now(UTC) + timedelta(minutes=minutes),
        }
        return jwt.encode(claims, key, algorithm="HS256")

    def call(value: str) -> int:
        with api.server.client(value) as client:
            return int(client.get("/api/v1/audit").status_code)

    assert call(token("admin")) == 200
    assert call(token("viewer")) == 403
    assert call(token("admin", minutes=-5)) == 401  # expired
    assert call(token("admin", key="another-secret-of-enough-length-0123")) == 401  # forged
    good = token("admin")
    assert call(good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")) == 401


def test_rs256_jwts(tmp_path: Path) -> None:
    """RS256 with a public key file: a token signed with the matching private key is
    accepted, one signed with another key is not."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from warroom.auth import JwtVerifier

    private, other = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)
    )
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "platform.pem").write_bytes(pem)
    verifier = JwtVerifier(None, str(tmp_path / "platform.pem"), audience="warroom")
    claims = {
        "sub": "ci",
        "role": "operator",
        "aud": "warroom",
        "exp": datetime.now(UTC) + timedelta(minutes=5),
    }
    principal = verifier.verify(jwt.encode(claims, private, algorithm="RS256"))
    assert principal is not None and (principal.name, principal.role) == ("ci", "operator")
    assert verifier.verify(jwt.encode(claims, other, algorithm="RS256")) is None
    assert (
        verifier.verify(jwt.encode({**claims, "aud": "elsewhere"}, private, algorithm="RS256"))
        is None
    )


def test_revoked_token_stops_working(api: Api) -> None:
    catalog = open_catalog(api.catalog_url)
    try:
        _, token = TokenStore(catalog).create(f"temp-{uuid.uuid4().hex[:6]}", "viewer")
        with api.server.client(token) as client:
            assert client.get("/api/v1/checkpoints/list").status_code == 200
            TokenStore(catalog).revoke(TokenStore(catalog).list()[-1].id)
            assert client.get("/api/v1/checkpoints/list").status_code == 401
    finally:
        catalog.close()


def test_audit_trail_and_interrupted_jobs(api: Api) -> None:
    with api.as_("admin") as admin:
        stale = admin.get(f"/api/v1/jobs/{api.stale_job}").json()
        assert stale["status"] == "failed" and stale["error"]["code"] == "interrupted"
        assert stale["retryable"]
        retried = admin.post(f"/api/v1/jobs/{api.stale_job}/retry")
        assert retried.status_code == 202
        job = _wait_job(admin, retried.headers["location"])
        assert job["status"] == "succeeded" and job["retry_of"] == api.stale_job
        again = admin.post(f"/api/v1/jobs/{api.stale_job}/retry")
        assert again.status_code == 409 and "already retried" in again.text
        entries = admin.get("/api/v1/audit?limit=200").json()["entries"]
    retries = [e for e in entries if e["path"].endswith(f"{api.stale_job}/retry")]
    assert {(e["actor"], e["role"], e["outcome"]) for e in retries} == {
        ("admin-bot", "admin", "success"),
        ("admin-bot", "admin", "failure"),
    }
    assert any(e["actor"] == "anonymous" and e["status_code"] == 401 for e in entries)
    cleanups = {
        (e["details"]["query"], e["details"]["credential"])
        for e in entries
        if e["path"] == "/api/v1/checkpoints/cleanup" and e["role"] == "admin"
    }
    assert ("dry_run=true&wait=true", "token") in cleanups and ("days=-1", "token") in cleanups


def test_health_readiness_metrics_and_openapi(api: Api) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    with api.as_("admin") as admin:  # a fresh backup: readiness includes backup freshness
        assert admin.post("/api/v1/checkpoints/database?wait=true").status_code == 200
        metrics = admin.get("/metrics")
        status = admin.get("/api/v1/status").json()
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("warroom_checkpoints", (("type", "database"),))] >= 1
    assert samples[("warroom_checkpoint_stored_bytes", (("type", "database"),))] > 0
    assert "warroom_database_backup_last_success_timestamp_seconds" in families
    assert "warroom_workflow_executions" in families
    assert {"warroom_workflow_workers", "warroom_workflow_queue_executions"} <= set(families)
    assert any(name == "warroom_api_requests_total" for name, _ in samples)
    (source,) = status["sources"]
    assert status["healthy"] and source["newest_completed"]["age_hours"] < 1
    with api.as_(None) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {
            "catalog": "ok",
            "storage": "ok",
            "backups": "ok",
        }
        assert client.get("/metrics").status_code == 401
        document = client.get("/openapi.json").json()
    from openapi_spec_validator import validate

    validate(document)
    assert set(document["paths"]) == {
        "/api/v1/checkpoints/workflow",
        "/api/v1/checkpoints/workflow/{execution_id}/{action}",
        "/api/v1/checkpoints/database",
        "/api/v1/checkpoints/deployment",
        "/api/v1/checkpoints/list",
        "/api/v1/checkpoints/restore/database/{checkpoint_name}",
        "/api/v1/checkpoints/cleanup",
        "/api/v1/checkpoints/database/{name}/verify",
        "/api/v1/checkpoints/{type}/{name}",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/retry",
        "/api/v1/workflows/executions",
        "/api/v1/workflows/executions/{execution_id}",
        "/api/v1/workflows/executions/{execution_id}/resume",
        "/api/v1/workflows/executions/{execution_id}/cancel",
        "/api/v1/workflows/executions/{execution_id}/messages",
        "/api/v1/workflows/executions/{execution_id}/events",
        "/api/v1/workflows/executions/{execution_id}/fork",
        "/api/v1/workflows/{name}/start",
        "/api/v1/audit",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/status",
        "/api/v1/whoami",
        "/api/v1/tokens",
        "/api/v1/tokens/{name_or_id}/revoke",
        "/api/v1/schedules",
        "/api/v1/deployments",
        "/api/v1/deployments/rollback",
    }
    assert set(document["paths"]["/api/v1/checkpoints/cleanup"]) == {"delete"}
