"""The API under attack, against the real app and a real catalog (SQLite and PostgreSQL): a
brute force of bad tokens, JWTs minted for other services, workflow states that could not be
read back."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from sqlalchemy import select

from tests.e2e.inprocess import InProcessApi, in_process_api
from warroom.catalog.schema import audit_log

WORKFLOW = "/api/v1/checkpoints/workflow"
WINDOW = 60.0  # the audit middleware's aggregation window


@pytest.fixture
def api(tmp_path: Path, catalog_url: str) -> Iterator[InProcessApi]:
    with in_process_api(tmp_path, catalog_url=catalog_url, audit_retention_days=30) as built:
        yield built


def _guess(n: int) -> str:
    return f"wr_{n:016x}_guess{n:020d}"


def _audit_rows(api: InProcessApi, client: str) -> list[dict[str, Any]]:
    with api.services.catalog.single() as conn:
        rows = conn.execute(select(audit_log).order_by(audit_log.c.id))
        return [dict(row._mapping) for row in rows if row.details["client"] == client]


def test_a_brute_force_is_slowed_down_and_never_crashes(api: InProcessApi) -> None:
    body = {"execution_id": "ext-1", "step_id": "s", "state": {}}
    first = Counter(
        api.call("POST", WORKFLOW, token=_guess(n), json=body).status_code for n in range(2000)
    )
    assert first == {401: 6, 429: 1994}  # five free failures, the sixth bars
    barred = api.call("POST", WORKFLOW, token=_guess(0), json=body)
    assert barred.headers["Retry-After"] == "1"
    assert barred.json()["error"]["code"] == "too_many_failures"
    # While barred, even a good token from that client is refused before it is looked at...
    assert api.call("POST", WORKFLOW, token=api.tokens["operator"], json=body).status_code == 429
    # ...but another client's good token works.
    other = api.call("POST", WORKFLOW, client="10.0.0.2", token=api.tokens["operator"], json=body)
    assert other.status_code == 201, other.text
    [aggregated] = _audit_rows(api, "10.0.0.1")
    assert aggregated["actor"] == "anonymous" and aggregated["status_code"] == 401
    assert aggregated["details"]["count"] == 2002
    assert aggregated["details"]["statuses"] == {"401": 6, "429": 1996}
    assert [row["actor"] for row in _audit_rows(api, "10.0.0.2")] == ["operator-bot"]

    # Waiting out each bar and failing again: the bars double up to a ceiling, and more than
    # 1,024 failures (where 2**n overflowed a float) still answer 401/429, never 500.
    started, waits = api.clock(), []
    for n in range(1100):
        probe = api.call("POST", WORKFLOW, token=_guess(n), json=body)
        assert probe.status_code == 429
        waits.append(int(probe.headers["Retry-After"]))
        api.clock.advance(waits[-1])
        assert api.call("POST", WORKFLOW, token=_guess(n), json=body).status_code == 401
    assert waits[:8] == [1, 2, 4, 8, 16, 32, 60, 60] and set(waits[8:]) == {60}
    rows = _audit_rows(api, "10.0.0.1")
    assert sum(row["details"]["count"] for row in rows) == 2002 + 2 * 1100
    assert len(rows) <= 2 + (api.clock() - started) // WINDOW  # one per client per window

    api.clock.advance(60)
    assert api.call("POST", WORKFLOW, token=api.tokens["operator"], json=body).status_code == 201


def test_refusals_to_a_known_caller_are_aggregated_too(api: InProcessApi) -> None:
    for _ in range(50):
        refused = api.call("DELETE", "/api/v1/checkpoints/cleanup", token=api.tokens["viewer"])
        assert refused.status_code == 403
    [row] = _audit_rows(api, "10.0.0.1")
    assert (row["actor"], row["details"]["count"]) == ("viewer-bot", 50)


def test_old_audit_entries_are_deleted(api: InProcessApi) -> None:
    def add_entry(days_ago: int) -> None:
        with api.services.catalog.single() as conn:
            conn.execute(
                audit_log.insert().values(
                    at=datetime.now(UTC) - timedelta(days=days_ago),
                    actor=f"{days_ago}-days-ago",
                    method="POST",
                    path="/x",
                    status_code=200,
                    outcome="success",
                    details={"client": "seeded"},
                )
            )

    def seeded() -> list[str]:
        return [row["actor"] for row in _audit_rows(api, "seeded")]

    add_entry(31)
    add_entry(29)
    api.call("POST", WORKFLOW, token=_guess(1), json={})
    assert seeded() == ["29-days-ago"]
    add_entry(40)
    api.call("POST", WORKFLOW, token=_guess(2), json={})
    assert seeded() == ["29-days-ago", "40-days-ago"]  # checked at most once an hour
    api.clock.advance(3600)
    api.call("POST", WORKFLOW, token=_guess(3), json={})
    assert seeded() == ["29-days-ago"]


# -- JWTs need this service's audience ---------------------------------------------------------

JWT_SECRET = "platform-shared-secret-for-tests-0123456789"


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[Any, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@pytest.mark.parametrize("algorithm", ["HS256", "RS256"])
def test_jwts_for_another_service_are_refused(
    tmp_path: Path, rsa_keys: tuple[Any, bytes], algorithm: str
) -> None:
    private, public = rsa_keys
    key = JWT_SECRET if algorithm == "HS256" else private
    (tmp_path / "platform.pem").write_bytes(public)

    def call(api: InProcessApi, n: int, **extra: Any) -> int:
        claims = {"sub": "ci", "role": "admin", "exp": datetime.now(UTC) + timedelta(minutes=5)}
        token = jwt.encode({**claims, **extra}, key, algorithm=algorithm)
        return api.call("GET", "/api/v1/audit", client=f"10.1.0.{n}", token=token).status_code

    settings = {"jwt_secret": JWT_SECRET, "jwt_public_key": str(tmp_path / "platform.pem")}
    with in_process_api(tmp_path / "default", **settings) as api:
        assert api.services.settings.jwt_audience == "warroom"
        assert call(api, 1, aud="warroom") == 200
        assert call(api, 2, aud=["billing", "warroom"]) == 200
        assert call(api, 3, aud="other") == 401
        assert call(api, 4) == 401  # no audience at all
    with in_process_api(tmp_path / "billing", jwt_audience="billing", **settings) as api:
        assert call(api, 1, aud="billing") == 200
        assert call(api, 2, aud="warroom") == 401


# -- workflow states that could not be read back ----------------------------------------------


def _post_raw(api: InProcessApi, body: str) -> Any:
    return api.call(
        "POST",
        WORKFLOW,
        token=api.tokens["operator"],
        content=body.encode(),
        headers={"Content-Type": "application/json"},
    )


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("state", "field", "problem"),
    [
        ('"\\ud800"', "state", "lone surrogate"),
        ('{"ok": ["fine", "\\udfff tail"]}', "state.ok[1]", "lone surrogate"),
        ('{"\\ud83d": 1}', "state.\\ud83d", "key with a lone surrogate"),
        ("1e999", "state", "non-finite number (inf)"),
        ('{"a": -1e999}', "state.a", "non-finite number (-inf)"),
        ("[1, NaN]", "state[1]", "non-finite number (nan)"),
        (_nested(65), "state" + "[0]" * 64, "nested deeper than 64 levels"),
        (_nested(900), "state" + "[0]" * 64, "nested deeper than 64 levels"),
    ],
)
def test_states_that_cannot_be_read_back_are_refused(
    api: InProcessApi, state: str, field: str, problem: str
) -> None:
    answer = _post_raw(api, f'{{"execution_id": "bad-1", "step_id": "s", "state": {state}}}')
    assert answer.status_code == 422, answer.text
    [found] = answer.json()["error"]["details"]["problems"]
    assert found["field"] == field and problem in found["problem"]
    lookup = api.call("GET", f"{WORKFLOW}/bad-1", token=api.tokens["viewer"])
    assert lookup.status_code == 404  # nothing was stored


def test_metadata_is_checked_like_states(api: InProcessApi) -> None:
    body = '{"execution_id": "bad-2", "step_id": "s", "metadata": {"note": "\\ud800"}}'
    answer = _post_raw(api, body)
    assert answer.status_code == 422
    assert answer.json()["error"]["details"]["problems"][0]["field"] == "metadata.note"


def test_storable_states_are_read_back_exactly(api: InProcessApi) -> None:
    state = {
        "deep": json.loads(_nested(63)),  # with the outer object: 64 levels
        "emoji": "checkpoint \U0001f680 \u00e9\u4e2d",
        "nul": "a\u0000b",
        "big": 2**200,
        "small": -(2**70),
        "float": 0.1,
        "neg_zero": -0.0,
        "empty": {"": [None, True, False]},
    }
    body = {"execution_id": "good-1", "step_id": "s", "state": state, "metadata": {"k": "v\u0000"}}
    stored = api.call("POST", WORKFLOW, token=api.tokens["operator"], json=body)
    assert stored.status_code == 201, stored.text
    read = api.call("GET", f"{WORKFLOW}/good-1", token=api.tokens["viewer"])
    assert read.status_code == 200
    [checkpoint] = read.json()["checkpoints"]
    assert checkpoint["state"] == state and checkpoint["metadata"] == {"k": "v\u0000"}
    assert json.dumps(checkpoint["state"]["neg_zero"]) == "-0.0"
