"""Schemathesis against the running service's /openapi.json: generated requests to every
operation, as an admin; no answer may be a 5xx or break its own declared schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.e2e.cli import cli_env
from tests.e2e.server import running_server
from warroom.auth import TokenStore
from warroom.catalog import open_catalog

pytestmark = pytest.mark.filterwarnings("ignore")  # third-party warnings inside schemathesis


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    workdir = tmp_path_factory.mktemp("schemathesis")
    database = create_pg_database("wrt_fuzz")
    with psycopg.connect(pg_url(database), autocommit=True) as conn:
        conn.execute("CREATE TABLE t AS SELECT generate_series(1, 10) AS id")
    catalog = open_catalog(f"sqlite:///{workdir}/catalog.db")
    _, token = TokenStore(catalog).create("fuzzer", "admin")
    catalog.close()
    env = cli_env(workdir, DATABASE_URL=pg_url(database), WARROOM_MAX_BODY_BYTES="65536")
    try:
        with running_server(env, workdir) as server:
            yield {"url": server.url, "token": token}
    finally:
        drop_pg_database(database)


def test_no_server_errors_and_schema_conformance(service: dict[str, str]) -> None:
    # Schemathesis' own pytest plugin does not run on this pytest; its Hypothesis strategies
    # are driven directly instead, one operation at a time.
    schema = schemathesis.openapi.from_url(f"{service['url']}/openapi.json")
    headers = {"Authorization": f"Bearer {service['token']}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=8,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: Any) -> None:
            if case.query and "timeout" in case.query:
                case.query["timeout"] = 5  # bound ?wait=true
            case.call_and_validate(headers=headers)

        try:
            exercise()
        except Exception as exc:  # noqa: BLE001 - collected: one report for every operation
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
