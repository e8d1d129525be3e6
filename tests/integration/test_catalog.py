"""The catalog on both dialects: migrations, checkpoint records, rebuild."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from warroom.catalog import CheckpointRecord, open_catalog
from warroom.catalog.migrations import HEAD
from warroom.errors import ConfigurationError


def _record(name: str, minutes: int = 0, **extra: object) -> CheckpointRecord:
    created = datetime(2026, 11, 26, 3, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    return CheckpointRecord(
        type="database",
        name=name,
        status="completed",
        created_at=created,
        source="postgresql://app@db/prod",
        size_original=100,
        size_stored=40,
        checksum="ab" * 32,
        **extra,
    )  # type: ignore[arg-type]


def test_records_round_trip(catalog_url: str) -> None:
    catalog = open_catalog(catalog_url)
    try:
        catalog.upsert_checkpoint(_record("b", 5, details={"tables": 3}))
        catalog.upsert_checkpoint(_record("a", 1))
        got = catalog.get_checkpoint("database", "b")
        assert got is not None and got.details == {"tables": 3}
        assert got.created_at == datetime(2026, 11, 26, 3, 5, tzinfo=UTC)
        assert [r.name for r in catalog.list_checkpoints("database")] == ["a", "b"]
        assert catalog.list_checkpoints("workflow") == []

        verified_at = datetime(2026, 11, 27, tzinfo=UTC)
        catalog.set_verified("database", "a", "restore-tested", verified_at)
        a = catalog.get_checkpoint("database", "a")
        assert a is not None and a.status == "restore-tested" and a.verified_at == verified_at

        catalog.upsert_checkpoint(_record("a", 1))  # an upsert, never a duplicate
        assert len(catalog.list_checkpoints()) == 2
        catalog.replace_checkpoints("database", [_record("c")])
        assert [r.name for r in catalog.list_checkpoints()] == ["c"]
        catalog.delete_checkpoint("database", "c")
        assert catalog.get_checkpoint("database", "c") is None
    finally:
        catalog.close()


def test_migrations_run_once_with_concurrent_starts(catalog_url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            open_catalog(catalog_url).close()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    catalog = open_catalog(catalog_url)
    with catalog.transaction() as conn:
        versions = conn.exec_driver_sql("SELECT version FROM warroom_schema_version").fetchall()
    catalog.close()
    assert [v for (v,) in versions] == list(range(1, HEAD + 1))


def test_naive_datetimes_are_refused(catalog_url: str) -> None:
    catalog = open_catalog(catalog_url)
    try:
        record = _record("n")
        record.created_at = record.created_at.replace(tzinfo=None)
        with pytest.raises(Exception, match="naive"):
            catalog.upsert_checkpoint(record)
    finally:
        catalog.close()


@pytest.mark.parametrize("url", ["mysql://db/x", "not a url"])
def test_unsupported_catalog_urls(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_catalog(url)


def test_a_version_4_catalog_gains_the_schedule_heartbeat(catalog_url: str) -> None:
    catalog = open_catalog(catalog_url)
    with catalog.engine.begin() as conn:  # back to version 4, as the code before it made it
        conn.exec_driver_sql("ALTER TABLE warroom_schedule_runs DROP COLUMN heartbeat_at")
        conn.exec_driver_sql("DELETE FROM warroom_schema_version WHERE version >= 5")
    catalog.close()
    catalog = open_catalog(catalog_url)
    with catalog.engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("warroom_schedule_runs")}
        versions = conn.exec_driver_sql("SELECT version FROM warroom_schema_version").fetchall()
    assert "heartbeat_at" in columns
    assert [v for (v,) in versions] == list(range(1, HEAD + 1))
    catalog.close()


def test_a_version_5_catalog_gains_sources_and_the_new_status_words(catalog_url: str) -> None:
    """Rows indexed by older versions: ``verified`` becomes ``restore-tested``, ``safety-``
    names become safety backups, and the source is read from the label."""
    from warroom.catalog.schema import checkpoints
    from warroom.sources import source_id_of

    catalog = open_catalog(catalog_url)
    catalog.upsert_checkpoint(_record("tested"))
    catalog.set_verified("database", "tested", "verified", datetime.now(UTC))
    catalog.upsert_checkpoint(_record("safety-prod-20261126T030000000000Z", 1))
    with catalog.engine.begin() as conn:  # back to version 5, as the code before it made it
        conn.exec_driver_sql("DROP INDEX warroom_checkpoints_source")
        for column in ("source_id", "safety"):
            conn.exec_driver_sql(f"ALTER TABLE {checkpoints.name} DROP COLUMN {column}")
        conn.exec_driver_sql("DELETE FROM warroom_schema_version WHERE version >= 6")
    catalog.close()
    catalog = open_catalog(catalog_url)
    rows = {r.name: r for r in catalog.list_checkpoints("database")}
    assert rows["tested"].status == "restore-tested" and not rows["tested"].safety
    assert rows["safety-prod-20261126T030000000000Z"].safety
    assert {source_id_of(r) for r in rows.values()} == {"postgresql://db:5432/prod"}
    catalog.close()
