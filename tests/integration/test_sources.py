"""Backups of several databases in one repository: retention, status, restore tests and the
deployment check judge each source alone, and ``catalog rebuild`` keeps what verification
proved (issue 11's scenarios, with real PostgreSQL, SQLite and files; the clock is injected)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import create_pg_database, drop_pg_database, pg_url
from warroom.api.metrics import build_registry
from warroom.config import Settings
from warroom.database.manifest import _document_sha256
from warroom.errors import IntegrityError
from warroom.repository.layout import backup_prefix, manifest_key
from warroom.scheduler.jobs import _restore_test, build_scheduler
from warroom.services import Services, build_services
from warroom.status import system_status

START = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _fill(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, v text)")
        conn.execute("TRUNCATE t")
        conn.execute("INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, %s) i", (rows,))


def _rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])


@pytest.fixture
def two_databases() -> Iterator[tuple[str, str]]:
    names = [create_pg_database("wrt_prod"), create_pg_database("wrt_staging")]
    try:
        yield pg_url(names[0]), pg_url(names[1])
    finally:
        for name in names:
            drop_pg_database(name)


def _services(tmp_path: Path, database_url: str | None, clock: Clock) -> Services:
    services = build_services(
        Settings(
            backup_dir=tmp_path / "backups",
            checkpoint_dir=tmp_path / "checkpoints",
            catalog_url=f"sqlite:///{tmp_path}/catalog.db",
            database_url=database_url,
        )
    )
    services.backups.clock = services.cleanup.clock = clock
    return services


def _at(clock: Clock, day: float) -> Clock:
    clock.now = START + timedelta(days=day)
    return clock


def _by_source(report: dict[str, Any]) -> dict[str, dict[str, set[str]]]:
    return {
        group["source"]: {
            "keep": {entry["name"] for entry in group["keep"]},
            "delete": {entry["name"] for entry in group["delete"]},
        }
        for group in report["database"]["sources"]
    }


def test_cleanup_keeps_the_newest_good_backups_of_every_source(
    tmp_path: Path, two_databases: tuple[str, str]
) -> None:
    """Prod's nightly backup fails for a week and more while restores into staging make
    safety backups and a SQLite database is backed up daily: prod keeps its newest intact and
    its newest restore-tested backups, and every source is planned on its own."""
    prod, staging = two_databases
    lite = tmp_path / "app.db"
    with sqlite3.connect(lite) as conn:
        conn.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
    conn.close()
    clock = Clock(START)
    _fill(prod, 5)
    _fill(staging, 2)
    with _services(tmp_path, prod, clock) as services:
        backups = services.backups
        for day, name in enumerate(["prod-1", "prod-2", "prod-3"]):
            backups.clock = _at(clock, day)
            backups.create(url=prod, name=name)
        backups.clock = _at(clock, 3)
        backups.verify("prod-1", restore_test=True)  # prod-1: restore-tested
        backups.create(url=staging, name="staging-1")
        for day in range(10, 17):  # prod fails from here on; SQLite and staging go on
            backups.clock = _at(clock, day)
            backups.create(url=f"sqlite:///{lite}", name=f"lite-{day}")
        for day in (9, 18, 19):
            backups.clock = _at(clock, day)
            report = backups.restore("prod-3", target_url=staging, confirm=True)
            assert report.safety_backup and report.safety_backup.startswith("safety-")
        assert _rows(staging) == 5

        records = {r.name: r for r in services.catalog.list_checkpoints("database")}
        assert records["prod-1"].status == "restore-tested"
        safety = [r for r in records.values() if r.safety]
        assert len(safety) == 3
        assert {r.source_id for r in safety} == {records["staging-1"].source_id}
        assert records["prod-1"].source_id.startswith("postgresql:")  # the system identifier
        assert records["prod-1"].source_id != records["staging-1"].source_id

        cleanup = services.cleanup
        cleanup.clock = _at(clock, 20)
        services.settings.retention_keep_last = 1
        plan = cleanup.run(days=7, dry_run=True)
        groups = _by_source(plan)
        prod_id = records["prod-1"].source_id
        staging_id = records["staging-1"].source_id
        lite_id = records["lite-10"].source_id
        assert groups[prod_id] == {"keep": {"prod-1", "prod-3"}, "delete": {"prod-2"}}
        reasons = {
            entry["name"]: entry["reason"]
            for group in plan["database"]["sources"]
            for entry in group["keep"] + group["delete"]
        }
        assert reasons["prod-3"] == "the newest intact backup of its source"
        assert reasons["prod-1"] == "the newest restore-tested backup of its source"
        # Staging: its own backup stays (the newest intact); the safety backups by their rule.
        safety_old, *safety_new = sorted(r.name for r in safety)
        assert groups[staging_id] == {
            "keep": {"staging-1", *safety_new},
            "delete": {safety_old},
        }
        assert reasons[safety_old] == "a safety backup older than 7 days"
        assert groups[lite_id]["keep"] == {"lite-13", "lite-14", "lite-15", "lite-16"}

        done = cleanup.run(days=7)
        left = {r.name for r in services.catalog.list_checkpoints("database")}
        assert left == {"prod-1", "prod-3", "staging-1", *safety_new} | {
            f"lite-{d}" for d in range(13, 17)
        }
        assert not backups.exists("prod-2") and backups.exists("prod-3")
        assert done["database"] == plan["database"]


def test_status_and_the_deployment_check_judge_the_configured_database(
    tmp_path: Path, two_databases: tuple[str, str]
) -> None:
    prod, staging = two_databases
    _fill(prod, 3)
    _fill(staging, 1)
    clock = Clock(START)
    with _services(tmp_path, prod, clock) as services:
        services.backups.create(url=prod, name="prod-old")
        services.backups.clock = _at(clock, 5)
        services.backups.create(url=staging, name="staging-fresh")
        services.backups.restore("prod-old", target_url=staging, confirm=True)

        report = system_status(services, START + timedelta(days=5, hours=1))
        assert not report["healthy"]
        sources = {s["source"]: s for s in report["sources"]}
        configured = [s for s in report["sources"] if s["configured"]]
        assert len(configured) == 1 and configured[0]["newest_completed"]["name"] == "prod-old"
        assert configured[0]["stale"] and report["problems"] == [
            f"{configured[0]['label']}: the newest intact backup, prod-old, is 121.0 h old "
            "(limit 26 h)"
        ]
        staging_status = next(s for s in sources.values() if not s["configured"])
        assert staging_status["newest_completed"]["name"] == "staging-fresh"
        assert staging_status["safety_backups"] == 1

        services.deployments.clock = lambda: START + timedelta(days=5, hours=1)
        check = services.deployments.validate(record=False).results
        backups_check = next(c for c in check if c.name == "backups")
        assert backups_check.status == "failed" and "prod-old" in backups_check.message

        # The scheduled restore test tries prod's newest, not staging's newer backups.
        assert _restore_test(services, START + timedelta(days=5))["name"] == "prod-old"
        assert (
            system_status(services, START + timedelta(hours=2))["sources"][0][
                "newest_restore_tested"
            ]["name"]
            == "prod-old"
        )

        metrics = _scrape(services)
        prod_id = configured[0]["source"]
        assert (
            f'warroom_database_backup_last_success_timestamp_seconds{{source="{prod_id}"}}'
            in metrics
        )
        assert f'warroom_database_backups{{source="{prod_id}",status="restore-tested"}} 1.0' in (
            metrics
        )
        assert "password" not in metrics


def _scrape(services: Services) -> str:
    from prometheus_client import generate_latest

    return generate_latest(build_registry(services)).decode()


def test_without_a_database_status_and_the_schedule_say_so(tmp_path: Path) -> None:
    with _services(tmp_path, None, Clock(START)) as services:
        report = system_status(services, START)
        assert not report["healthy"]
        assert report["problems"] == ["no database configured: set DATABASE_URL"]
        rows = {row["job"]: row for row in build_scheduler(services, "test").describe()}
        assert rows["cleanup"]["off"] is None
        for job in ("database-backup", "restore-test", "staleness"):
            assert rows[job]["off"] == "no database configured: set DATABASE_URL"


def _forge_manifest(services: Services, name: str, edit: Any) -> None:
    """Rewrite a manifest with ``edit`` and every checksum made to match, as an attacker who
    can write the repository would."""
    storage = services.backup_storage
    document = json.loads(b"".join(storage.get(manifest_key(name))))
    document.pop("manifest_sha256")
    edit(document)
    document["manifest_sha256"] = _document_sha256(document)
    storage.put(manifest_key(name), [json.dumps(document).encode()])


def _part_path(tmp_path: Path, name: str, part: str) -> Path:
    return tmp_path / "backups" / backup_prefix(name) / part


def test_rebuild_keeps_what_verification_proved_and_skips_hostile_manifests(
    tmp_path: Path, two_databases: tuple[str, str]
) -> None:
    prod, _ = two_databases
    _fill(prod, 4)
    with _services(tmp_path, prod, Clock(START)) as services:
        backups = services.backups
        for name in ("tested", "damaged", "flipped", "truncated", "missing", "deep", "huge"):
            backups.create(url=prod, name=name)
        backups.verify("tested", restore_test=True)
        for name in ("damaged", "flipped"):
            part = _part_path(tmp_path, name, "schema")
            data = bytearray(part.read_bytes())
            data[len(data) // 2] ^= 0xFF
            part.write_bytes(bytes(data))
        with pytest.raises(IntegrityError):
            backups.verify("damaged")
        truncated = _part_path(tmp_path, "truncated", "schema")
        truncated.write_bytes(truncated.read_bytes()[:-5])
        _part_path(tmp_path, "missing", "schema").unlink()
        manifest_path = tmp_path / "backups" / manifest_key("deep")
        manifest_path.write_bytes(b'{"format": 2, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
        _forge_manifest(services, "huge", lambda d: d["parts"][0].__setitem__("plain_size", 10**30))
        services.catalog.replace_checkpoints("database", [])  # the catalog is lost

        indexed, problems = backups.rebuild_catalog()
        statuses = {r.name: r.status for r in services.catalog.list_checkpoints("database")}
        assert statuses == {
            "tested": "restore-tested",  # from the check records beside the manifests
            "damaged": "damaged",
            "flipped": "completed",  # not promoted; its bytes are only re-read with --check
            "truncated": "damaged",  # sizes are always compared
            "missing": "damaged",
        }
        assert indexed == 5
        text = "\n".join(problems)
        assert "deep: the manifest of backup 'deep' is damaged: it is nested too deeply" in text
        assert "huge: the manifest of backup 'huge' is damaged: parts.0.plain_size" in text

        _, problems = backups.rebuild_catalog(check=True)
        statuses = {r.name: r.status for r in services.catalog.list_checkpoints("database")}
        assert statuses["flipped"] == "damaged"
        assert any(p.startswith("flipped: backup 'flipped' is damaged") for p in problems)

        # The hostile manifest is refused before the target is touched.
        before = _rows(prod)
        with pytest.raises(IntegrityError, match="plain_size"):
            backups.restore("huge", target_url=prod, confirm=True)
        assert _rows(prod) == before
