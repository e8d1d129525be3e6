"""``verify --all-copies`` through the API, against a real local replica (WARROOM_REPLICAS): the
verify job checks every copy on its own and fails as the CLI exits (damaged: an integrity
failure naming the copy; missing: a failure), the listing and a backup's page say where its
copies are as ``warroom list --json`` does, and the OpenAPI document names the new field."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cli import cli_env, run_warroom
from tests.e2e.inprocess import InProcessApi, in_process_api
from warroom.database.backups import Progress

VERIFY = "/api/v1/checkpoints/database/b1/verify?wait=true"


@dataclass
class Copies:
    api: InProcessApi
    primary: Path
    replica: Path
    env: dict[str, str]

    def verify(self, body: dict[str, Any]) -> Any:
        answer = self.api.call("POST", VERIFY, token=self.api.tokens["admin"], json=body)
        assert answer.status_code in (200, 400), answer.text
        return answer.json()

    def replica_parts(self) -> list[Path]:
        folder = self.replica / "database" / "b1"
        return sorted(
            path for path in folder.iterdir() if path.is_file() and path.name != "manifest.json"
        )


@pytest.fixture
def copies(tmp_path: Path) -> Iterator[Copies]:
    """Backup ``b1`` of a SQLite database, stored in BACKUP_DIR and in a replica directory."""
    source = tmp_path / "app.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(500)])
    replica = tmp_path / "replica"
    url = f"sqlite:///{source}"
    with in_process_api(tmp_path, database_url=url, replicas=str(replica)) as api:
        created = api.call(
            "POST",
            "/api/v1/checkpoints/database?wait=true",
            token=api.tokens["admin"],
            json={"checkpoint_name": "b1"},
        ).json()
        assert created["status"] == "succeeded", created["error"]
        env = cli_env(tmp_path, DATABASE_URL=url, WARROOM_REPLICAS=str(replica))
        yield Copies(api, tmp_path / "backups", replica, env)


def test_every_copy_intact_succeeds_listing_each(copies: Copies) -> None:
    job = copies.verify({"all_copies": True})
    assert job["status"] == "succeeded", job["error"]
    assert job["params"]["all_copies"] is True
    assert job["result"]["name"] == "b1"
    assert [(c["location"], c["state"]) for c in job["result"]["copies"]] == [
        (str(copies.primary), "intact"),
        (str(copies.replica), "intact"),
    ]
    details = [c["detail"] for c in job["result"]["copies"]]
    assert all(re.fullmatch(r"1 part checked|\d+ parts checked", d) for d in details), details


def test_a_damaged_replica_fails_the_job_as_an_integrity_failure_naming_it(
    copies: Copies,
) -> None:
    part = copies.replica_parts()[0]
    stored = bytearray(part.read_bytes())
    stored[len(stored) // 2] ^= 0x01  # same size: only a read of every byte sees it
    part.write_bytes(bytes(stored))
    job = copies.verify({"all_copies": True})
    assert job["status"] == "failed" and job["result"] is None
    error = job["error"]
    assert error["code"] == "integrity"
    assert f"{copies.replica}: damaged" in error["message"]
    assert str(copies.primary) not in error["message"]  # the intact copy is not blamed
    states = {c["location"]: c["state"] for c in error["details"]["copies"]}
    assert states == {str(copies.primary): "intact", str(copies.replica): "damaged"}
    # The listing checks sizes, not bytes: the copy is still present there.
    assert _listed_copies(copies)["b1"] == {
        str(copies.primary): "present",
        str(copies.replica): "present",
    }
    # Without all_copies, the first copy is read: intact.
    assert copies.verify({})["status"] == "succeeded"


def test_a_missing_replica_fails_the_job(copies: Copies) -> None:
    (copies.replica / "database" / "b1" / "manifest.json").unlink()
    job = copies.verify({"all_copies": True})
    assert job["status"] == "failed"
    assert job["error"]["code"] == "failed"
    assert f"{copies.replica}: missing" in job["error"]["message"]
    states = {c["location"]: c["state"] for c in job["error"]["details"]["copies"]}
    assert states == {str(copies.primary): "intact", str(copies.replica): "missing"}
    assert _listed_copies(copies)["b1"][str(copies.replica)] == "missing"


def test_all_copies_with_a_restore_test_is_refused_as_the_cli_refuses_it(
    copies: Copies,
) -> None:
    answer = copies.verify({"all_copies": True, "restore_test": True})
    assert answer["error"]["code"] == "bad_input"
    cli = run_warroom(
        "verify", "b1", "--all-copies", "--restore-test", env=copies.env, cwd=copies.primary.parent
    )
    assert cli.code == 2 and answer["error"]["message"] in cli.stderr


def test_the_listing_and_a_backup_give_its_copies_as_the_cli_lists_them(copies: Copies) -> None:
    shown = run_warroom("list", "--json", env=copies.env, cwd=copies.primary.parent)
    assert shown.code == 0, shown.stderr
    [cli_row] = [row for row in shown.json()["checkpoints"] if row["name"] == "b1"]
    expected = {str(copies.primary): "present", str(copies.replica): "present"}
    assert cli_row["repositories"] == expected
    assert _listed_copies(copies)["b1"] == expected
    details = copies.api.call(
        "GET", "/api/v1/checkpoints/database/b1", token=copies.api.tokens["viewer"]
    ).json()
    assert details["repositories"] == expected


def test_without_replicas_rows_have_no_copies(tmp_path: Path) -> None:
    source = tmp_path / "app.db"
    sqlite3.connect(source).close()
    with in_process_api(tmp_path, database_url=f"sqlite:///{source}") as api:
        created = api.call(
            "POST", "/api/v1/checkpoints/database?wait=true", token=api.tokens["admin"]
        ).json()
        assert created["status"] == "succeeded", created["error"]
        rows = api.call("GET", "/api/v1/checkpoints/list", token=api.tokens["viewer"]).json()[
            "checkpoints"
        ]
    assert rows and all("repositories" not in row for row in rows)


def test_the_openapi_document_names_the_fields(copies: Copies) -> None:
    schemas = copies.api.call("GET", "/openapi.json").json()["components"]["schemas"]
    verify = schemas["VerifyIn"]["properties"]
    assert verify["all_copies"]["type"] == "boolean"
    assert "every repository" in verify["all_copies"]["description"]
    # Not both at once, in the schema too (so schema-driven clients and fuzzers know the 400).
    assert schemas["VerifyIn"]["not"]["required"] == ["restore_test", "all_copies"]
    assert "repositories" in schemas["CheckpointOut"]["properties"]


def _listed_copies(copies: Copies) -> dict[str, Any]:
    listing = copies.api.call(
        "GET", "/api/v1/checkpoints/list?type=database", token=copies.api.tokens["viewer"]
    ).json()
    return {row["name"]: row.get("repositories") for row in listing["checkpoints"]}


def test_each_stage_of_the_job_counts_up_to_its_own_total(copies: Copies) -> None:
    """The stored bytes of a copy, then its decoded bytes, each against its own total (a job's
    percentage comes from it), copy after copy."""
    reports: list[tuple[int, str, int | None]] = []
    copies.api.services.backups.verify_copies(
        "b1", progress=Progress(lambda *report: reports.append(report), interval=0)
    )
    manifest = copies.api.services.backups.manifest("b1")
    peak: dict[tuple[str, int | None], int] = {}
    for total, stage, expected in reports:
        peak[stage, expected] = max(peak.get((stage, expected), 0), total)
    assert peak == {
        (f"checking b1 in {copies.primary}", manifest.size_stored): manifest.size_stored,
        (f"verifying b1 in {copies.primary}", manifest.size_original): manifest.size_original,
        (f"checking b1 in {copies.replica}", manifest.size_stored): manifest.size_stored,
        (f"verifying b1 in {copies.replica}", manifest.size_original): manifest.size_original,
    }
