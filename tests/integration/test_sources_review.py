"""Adversarial review of issue 11 (sources, check records, bounded manifests): what a bad night
or a hostile repository writer does to retention, status and catalog rebuild."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_sources import START, Clock, _forge_manifest, _services
from warroom.catalog import CheckpointRecord
from warroom.config import Settings
from warroom.database.backups import Progress
from warroom.database.verification import CheckRecord
from warroom.errors import IntegrityError, NotFoundError
from warroom.repository.layout import backup_prefix, check_key
from warroom.services import Services, build_services


def _lite(tmp_path: Path, name: str = "app.db") -> str:
    path = tmp_path / name
    with sqlite3.connect(path) as conn:
        conn.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
    conn.close()
    return f"sqlite:///{path}"


def _flip_a_byte(tmp_path: Path, name: str) -> None:
    prefix = tmp_path / "backups" / backup_prefix(name)
    part = next(p for p in sorted(prefix.iterdir()) if p.is_file() and p.name != "manifest.json")
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))


def test_a_check_record_dated_in_the_future_does_not_hide_damage(tmp_path: Path) -> None:
    """A record written by a machine whose clock ran ahead (or by a hostile writer) must not
    outweigh the check that just found the backup damaged."""
    url = _lite(tmp_path)
    clock = Clock(START)
    with _services(tmp_path, url, clock) as services:
        backups = services.backups
        backups.create(url=url, name="b1")
        ahead = START + timedelta(days=3650)
        record = CheckRecord("b1", "checked", ahead, "a clock ten years ahead")
        backups.storage.put(check_key("b1", ahead), [record.to_json()])
        _flip_a_byte(tmp_path, "b1")
        clock.now = START + timedelta(days=1)
        with pytest.raises(IntegrityError):
            backups.verify("b1")
        assert services.catalog.get_checkpoint("database", "b1").status == "damaged"
        backups.rebuild_catalog()
        assert services.catalog.get_checkpoint("database", "b1").status == "damaged"


def test_a_verify_that_ends_after_cleanup_deleted_the_backup_does_not_bring_it_back(
    tmp_path: Path,
) -> None:
    """Cleanup deletes a backup while a verify of it is reading its (still open) parts: the
    verify's result must not re-create a catalog row for a backup that no longer exists."""
    url = _lite(tmp_path)
    with _services(tmp_path, url, Clock(START)) as services:
        backups = services.backups
        backups.create(url=url, name="b1")
        assert len(backups.manifest("b1").parts) == 1
        deleted: list[str] = []

        def report(total: int, stage: str, expected: int | None) -> None:
            if stage.startswith("verifying") and total and not deleted:
                backups.delete("b1")  # what a concurrent cleanup does
                deleted.append("b1")

        with pytest.raises(NotFoundError, match="deleted while it was being checked"):
            backups.verify("b1", progress=Progress(report, interval=0))
        assert deleted
        assert not backups.exists("b1")
        assert services.catalog.get_checkpoint("database", "b1") is None
        assert [r.name for r in services.catalog.list_checkpoints("database")] == []


def test_backups_of_another_server_at_the_same_address_are_not_the_configured_source(
    tmp_path: Path, pg_db: str
) -> None:
    """Two hosts share a repository, each backing up postgresql://localhost/app of its own
    server: the other server's backups (another system identifier, same address) are not the
    configured database's, so they neither take its keep-last places nor make it look fresh."""
    from tests.integration.test_sources import _fill

    _fill(pg_db, 3)
    clock = Clock(START)
    with _services(tmp_path, pg_db, clock) as services:
        backups = services.backups
        mine = backups.create(url=pg_db, name="mine-1")
        assert mine.source_id.startswith("postgresql:") and mine.source_id != mine.source_address
        other_id = "postgresql:1234567890123456789/" + mine.source_database
        for day in (1, 2, 3):
            clock.now = START + timedelta(days=day)
            other = backups.create(url=pg_db, name=f"other-{day}")

            def elsewhere(document: dict[str, Any]) -> None:
                document["source_id"] = other_id

            _forge_manifest(services, other.name, elsewhere)
        backups.rebuild_catalog()
        records = {r.name: r for r in services.catalog.list_checkpoints("database")}
        assert records["other-3"].source_id == other_id

        services.settings.retention_keep_last = 1
        services.cleanup.clock = lambda: START + timedelta(days=30)
        plan = services.cleanup.run(days=7, dry_run=True)
        groups = {g["source"]: g for g in plan["database"]["sources"]}
        assert {e["name"] for e in groups[mine.source_id]["keep"]} == {"mine-1"}
        assert {e["name"] for e in groups[other_id]["keep"]} == {"other-3"}
        assert "other-3" not in {b["name"] for b in groups[mine.source_id]["keep"]}

        from warroom.status import system_status

        status = system_status(services, START + timedelta(days=3, hours=1))
        configured = next(s for s in status["sources"] if s["configured"])
        assert configured["newest_completed"]["name"] == "mine-1"
        assert configured["stale"]


def _write_raw_manifest(services: Services, name: str, edit: Any) -> None:
    _forge_manifest(services, name, edit)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda d: d.__setitem__("created_at", "2026-11-01T03:00:00"), id="naive"),
        pytest.param(lambda d: d.__setitem__("source_id", "sqlite:/" + "a" * 600), id="long-id"),
        pytest.param(lambda d: d.__setitem__("source", "sqlite:///x\u0000y"), id="nul-label"),
    ],
)
def test_one_hostile_manifest_does_not_abort_the_rebuild(
    tmp_path: Path, catalog_url: str, edit: Any
) -> None:
    """Whatever one manifest says (a time with no zone, a source longer than the catalog's
    column, a NUL), the rebuild reports it and indexes the others; on both catalog dialects."""
    url = _lite(tmp_path)
    settings = Settings(
        backup_dir=tmp_path / "backups",
        checkpoint_dir=tmp_path / "checkpoints",
        catalog_url=catalog_url,
        database_url=url,
    )
    with build_services(settings) as services:
        backups = services.backups
        backups.create(url=url, name="good")
        backups.create(url=url, name="hostile")
        _forge_manifest(services, "hostile", edit)
        indexed, problems = backups.rebuild_catalog()
        assert [r.name for r in services.catalog.list_checkpoints("database")] == ["good"]
        assert indexed == 1
        assert len(problems) == 1 and problems[0].startswith("hostile: ")
        # and the rest of warroom reads the catalog as before
        services.cleanup.run(dry_run=True)


def test_a_label_longer_than_the_catalog_column_is_indexed_cut_to_fit(
    tmp_path: Path, catalog_url: str
) -> None:
    """The label is for people: a long one (a URL with many options) is cut to the catalog's
    column, and the backup stays indexed and restorable."""
    url = _lite(tmp_path)
    settings = Settings(
        backup_dir=tmp_path / "backups",
        checkpoint_dir=tmp_path / "checkpoints",
        catalog_url=catalog_url,
        database_url=url,
    )
    long_label = "sqlite:///" + "a" * 600
    with build_services(settings) as services:
        backups = services.backups
        backups.create(url=url, name="long")
        _forge_manifest(services, "long", lambda d: d.__setitem__("source", long_label))
        assert backups.rebuild_catalog() == (1, [])
        (record,) = services.catalog.list_checkpoints("database")
        assert record.source == long_label[:500]
        assert backups.manifest("long").source == long_label


def test_a_check_record_that_is_a_directory_or_garbage_is_ignored(tmp_path: Path) -> None:
    url = _lite(tmp_path)
    with _services(tmp_path, url, Clock(START)) as services:
        backups = services.backups
        backups.create(url=url, name="b1")
        checks = tmp_path / "backups" / backup_prefix("b1") / "checks"
        (checks / "20990101T000000000000Z.json").mkdir(parents=True)
        (checks / "x.json").write_bytes(b"\xff" * 100)
        (checks / "big.json").write_bytes(b" " * (1 << 20))
        other = CheckRecord("other", "restore-tested", START)
        (checks / "copied.json").write_bytes(other.to_json())
        assert backups.verify("b1").status == "checked"
        backups.rebuild_catalog()
        assert services.catalog.get_checkpoint("database", "b1").status == "checked"


def test_a_legacy_row_without_source_id_keeps_its_newest(tmp_path: Path) -> None:
    """A row indexed before sources (NULL source_id, only a label) is grouped by its label's
    address with the configured database's backups; cleanup keeps the newest of the group."""
    url = _lite(tmp_path)
    with _services(tmp_path, url, Clock(START)) as services:
        backups = services.backups
        backups.create(url=url, name="new")
        old = CheckpointRecord(
            "database", "legacy", "completed", START - timedelta(days=60), source=url
        )
        services.catalog.upsert_checkpoint(old)
        services.cleanup.clock = lambda: START + timedelta(days=60)
        services.settings.retention_keep_last = 1
        plan = services.cleanup.run(days=7, dry_run=True)
        (group,) = plan["database"]["sources"]
        assert {e["name"] for e in group["keep"]} == {"new"}
        assert {e["name"] for e in group["delete"]} == {"legacy"}


def _unused(_: Any) -> None:  # keep json imported for ad-hoc edits
    json.dumps(_)


NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _row(name: str, day: int, source_id: str, address: str) -> CheckpointRecord:
    return CheckpointRecord(
        "database",
        name,
        "completed",
        START + timedelta(days=day),
        source="postgresql://app@localhost:5432/app",
        source_id=source_id,
        details={"source_address": address},
    )


def test_an_unreachable_configured_server_is_matched_by_address_only_when_unambiguous() -> None:
    from warroom.database import Source
    from warroom.sources import group_by_source

    address = "postgresql://localhost:5432/app"
    down = Source(address, address, "postgresql://app@localhost:5432/app")
    mine = [_row("a-1", 1, "postgresql:111/app", address), _row("a-2", 2, address, address)]
    (group,) = group_by_source(mine, down, NOW)
    assert group.configured and [r.name for r in group.backups] == ["a-1", "a-2"]

    other = _row("b-1", 3, "postgresql:222/app", address)
    groups = {g.id: [r.name for r in g.backups] for g in group_by_source([*mine, other], down, NOW)}
    assert groups == {
        address: ["a-2"],  # recorded without an identity: it can only be ours
        "postgresql:111/app": ["a-1"],
        "postgresql:222/app": ["b-1"],
    }
    up = Source("postgresql:111/app", address, down.label)
    groups = {g.id: [r.name for r in g.backups] for g in group_by_source([*mine, other], up, NOW)}
    assert groups == {"postgresql:111/app": ["a-1", "a-2"], "postgresql:222/app": ["b-1"]}


def test_a_database_whose_source_cannot_be_recorded_is_refused_before_it_is_backed_up(
    tmp_path: Path,
) -> None:
    # SQLite opens paths up to 512 bytes; one of about 500 makes a label of over 500.
    deep = tmp_path.joinpath(*(["d" * 100] * 4))
    deep = deep / ("e" * (500 - len(str(deep / "app.db")) - 1))
    deep.mkdir(parents=True)
    url = _lite(deep)
    from warroom.errors import ConfigurationError

    with _services(tmp_path, None, Clock(START)) as services:
        with pytest.raises(ConfigurationError, match="at most 500 characters"):
            services.backups.create(url=url, name="deep")
        assert not services.backups.exists("deep")
        assert services.backup_storage.children("database") == []


HOSTILE_PROPERTIES: dict[str, Any] = {
    "tool-version": lambda d: d.__setitem__("tool_version", "x"),
    "acl": lambda d: d["database"].__setitem__("acl", 5),
    "owner": lambda d: d["database"].__setitem__("owner", 12),
    "encoding": lambda d: d["database"].__setitem__("encoding", {"a": 1}),
    "settings": lambda d: d["database"].__setitem__("settings", [[1, 2]]),
    "connection-limit": lambda d: d["database"].__setitem__("connection_limit", "abc"),
}


def test_forged_database_properties_are_refused_as_damage_not_met_as_a_crash(
    tmp_path: Path, pg_db: str
) -> None:
    """The manifest's database properties and tool version reach SQL and a version check in
    restore and restore tests: forged ones (an ACL that is a number, an owner that is not a
    name, a version that is not one) are an IntegrityError, recorded as damage, and the
    target is left as it was, not a TypeError or ValueError ("this is a bug")."""
    from tests.integration.test_sources import _fill, _rows

    _fill(pg_db, 3)
    with _services(tmp_path, pg_db, Clock(START)) as services:
        backups = services.backups
        for name, edit in HOSTILE_PROPERTIES.items():
            backups.create(url=pg_db, name=name)
            _forge_manifest(services, name, edit)
            with pytest.raises(IntegrityError):
                backups.verify(name, restore_test=True)
            assert services.catalog.get_checkpoint("database", name).status == "damaged"
            _fill(pg_db, 7)
            with pytest.raises(IntegrityError):
                backups.restore(name, target_url=pg_db, confirm=True)
            assert _rows(pg_db) == 7
