"""Database checkpoints of a real PostgreSQL database, through the service layer."""

from __future__ import annotations

import dataclasses
import json
import secrets
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.conftest import pg_database_exists, pg_url
from tests.dbcompare import PG_BIN, fill_rich_database, pg_snapshot
from warroom.codec import Encoder
from warroom.config import Settings
from warroom.database import PartRecord, pgcopy
from warroom.database.manifest import Manifest
from warroom.database.pgcopy import CopyTable
from warroom.database.postgres import WORK_CLAIM_KEY
from warroom.errors import (
    ConflictError,
    DatabaseError,
    IncompatibleBackupError,
    InputError,
    IntegrityError,
    NameTakenError,
    NotFoundError,
    StorageError,
)
from warroom.repository.layout import BACKUPS, backup_prefix, manifest_key
from warroom.services import Services, build_services


def unclaimed_work_databases(kind: str = "restore|scratch|retired") -> list[str]:
    """Work databases of ``kind`` that no running restore claims: what a restore or a restore
    test of this session left behind. A database claimed by a restore running elsewhere on this
    server (another test session) is not counted."""
    with psycopg.connect(pg_url("postgres"), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT datname FROM pg_database WHERE datname ~ %s"
            " AND pg_try_advisory_lock(%s, hashtext(datname))",
            (f"^warroom_({kind})_", WORK_CLAIM_KEY),
        ).fetchall()
    return [name for (name,) in rows]


@pytest.mark.parametrize("jobs", [1, 3])
def test_round_trip_restores_an_equal_database(
    services: Services,
    pg_db: str,
    pg_names: list[str],
    jobs: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fill_rich_database(pg_db)
    original = pg_snapshot(pg_db)
    if jobs > 1:  # parts of a few pages: several tables of their own, others sharing parts
        monkeypatch.setattr(pgcopy, "PART_TARGET_BYTES", 64 << 10)

    manifest = services.backups.create(url=pg_db, name="rich", jobs=jobs)
    assert manifest.tables["public.customers"] == 300
    assert manifest.tables["billing.invoices"] == 900
    assert manifest.tables["public.events_2026"] + manifest.tables["public.events_2027"] == 600
    copied = [CopyTable.from_dict(t).qualified for part in manifest.parts for t in part.copy]
    assert sorted(copied) == sorted(manifest.tables)  # every table's rows, stored once
    copy_parts = [part for part in manifest.parts if part.copy]
    if jobs > 1:
        assert len(copy_parts) > 2 and any(len(part.copy) > 1 for part in copy_parts)
    else:
        assert len(copy_parts) == 1

    pg_names.append("wrt_restored_" + str(jobs))
    report = services.backups.restore("rich", new_db=pg_names[0], url=pg_db, jobs=jobs)
    assert report.tables_checked == len(manifest.tables)

    restored = pg_snapshot(pg_url(pg_names[0]))
    assert restored.schema == original.schema
    assert restored.tables == original.tables
    assert restored.sequences == original.sequences
    if jobs > 1:  # a table alone in its part is loaded frozen: no later pass rewrites it
        alone = [CopyTable.from_dict(p.copy[0]) for p in copy_parts if len(p.copy) == 1]
        assert alone
        with psycopg.connect(pg_url(pg_names[0]), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_visibility")
            for table in alone:
                frozen, pages = conn.execute(
                    "SELECT (pg_visibility_map_summary(r)).all_frozen, pg_relation_size(r) / 8192"
                    " FROM (SELECT format('%%I.%%I', %s::text, %s::text)::regclass AS r) t",
                    [table.schema, table.name],
                ).fetchone()
                assert frozen == pages > 0, table.qualified
    assert restored.large_objects == original.large_objects


def test_restore_over_an_existing_database_takes_a_safety_backup(
    services: Services, pg_db: str
) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t SELECT g, 'before' FROM generate_series(1, 50) g")
    services.backups.create(url=pg_db, name="good")
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("UPDATE t SET v = 'bad migration'")
        conn.execute("CREATE TABLE junk (x int)")

    with pytest.raises(InputError, match="--yes"):
        services.backups.restore("good", target_url=pg_db)
    report = services.backups.restore("good", target_url=pg_db, confirm=True)

    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT DISTINCT v FROM t").fetchall() == [("before",)]
        assert conn.execute("SELECT to_regclass('junk')").fetchone() == (None,)
    assert report.safety_backup is not None
    safety = services.backups.manifest(report.safety_backup)
    assert "public.junk" in safety.tables  # the bad state itself can be restored again
    names = {record.name for record in services.backups.list_backups()}
    assert names == {"good", report.safety_backup}


def test_verify_and_restore_test(services: Services, pg_db: str) -> None:
    fill_rich_database(pg_db)
    services.backups.create(url=pg_db, name="checked")
    report = services.backups.verify("checked", restore_test=True, url=pg_db)
    assert report.restore_tested and report.tables_checked > 5
    record = services.catalog.get_checkpoint("database", "checked")
    assert record is not None and record.status == "restore-tested" and record.verified_at
    assert unclaimed_work_databases("scratch") == []


def _part_path(services: Services, name: str, part: str) -> object:
    return services.settings.backup_dir / "database" / name / part


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_damaged_backup_is_refused_and_target_untouched(
    services: Services, pg_db: str, pg_names: list[str], damage: str
) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2000) g"
        )
    services.backups.create(url=pg_db, name="victim")
    before = pg_snapshot(pg_db)
    path = services.settings.backup_dir / "database" / "victim" / "copy-00000"
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) - 100]))
    else:
        path.unlink()

    with pytest.raises(IntegrityError, match="copy-00000") as verify_error:
        services.backups.verify("victim")
    assert verify_error.value.details["part"] == "copy-00000"
    record = services.catalog.get_checkpoint("database", "victim")
    assert record is not None and record.status == "damaged"
    with pytest.raises(IntegrityError, match="victim"):
        services.backups.restore("victim", target_url=pg_db, confirm=True)
    assert pg_snapshot(pg_db) == before
    # Refused before anything was touched: not even a safety backup was taken.
    assert [r.name for r in services.backups.list_backups()] == ["victim"]
    # Refused into a new database too: it does not appear, nor is a staging database left.
    pg_names.append("wrt_victim")
    with pytest.raises(IntegrityError, match="victim"):
        services.backups.restore("victim", new_db="wrt_victim", url=pg_db)
    assert not pg_database_exists("wrt_victim")
    assert unclaimed_work_databases("restore") == []


def test_the_first_damaged_part_is_the_one_reported(
    services: Services, pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts are checked several at once; of two damaged ones, the error names the one the
    manifest lists first, every time."""
    fill_rich_database(pg_db)
    monkeypatch.setattr(pgcopy, "PART_TARGET_BYTES", 64 << 10)
    manifest = services.backups.create(url=pg_db, name="twice", jobs=2)
    copy_parts = [part.name for part in manifest.parts if part.copy]
    assert len(copy_parts) > 2
    first, later = copy_parts[1], copy_parts[-1]
    for part in (later, first):
        path = services.settings.backup_dir / "database" / "twice" / part
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    for _ in range(3):
        with pytest.raises(IntegrityError) as damaged:
            services.backups.verify("twice")
        assert damaged.value.details["part"] == first


def test_missing_or_tampered_manifest(services: Services, pg_db: str) -> None:
    services.backups.create(url=pg_db, name="m")
    manifest_path = services.settings.backup_dir / manifest_key("m")
    document = json.loads(manifest_path.read_text())
    document["tables"] = {"public.fake": 1}
    document["parts"][0]["plain_sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(document))
    with pytest.raises(IntegrityError, match="manifest"):
        services.backups.verify("m")
    manifest_path.unlink()
    with pytest.raises(NotFoundError, match="no database checkpoint named 'm'"):
        services.backups.verify("m")
    with pytest.raises(NotFoundError):
        services.backups.restore("m", new_db="wrt_never", url=pg_db)
    assert not pg_database_exists("wrt_never")


def test_name_rules_and_conflicts(services: Services, pg_db: str, pg_names: list[str]) -> None:
    services.backups.create(url=pg_db, name="taken")
    with pytest.raises(NameTakenError, match="already exists"):
        services.backups.create(url=pg_db, name="taken")
    with pytest.raises(ConflictError, match="already exists"):
        services.backups.restore("taken", new_db=pg_db.rsplit("/", 1)[1], url=pg_db)
    with pytest.raises(InputError, match="exactly one target"):
        services.backups.restore("taken")


def test_postgres_backup_cannot_restore_into_sqlite(
    services: Services, pg_db: str, tmp_path: object
) -> None:
    services.backups.create(url=pg_db, name="pg")
    with pytest.raises(IncompatibleBackupError, match="postgresql backup"):
        services.backups.restore("pg", target_url="sqlite:///app.db", confirm=True)


def test_catalog_rebuild_from_manifests(services: Services, pg_db: str) -> None:
    services.backups.create(url=pg_db, name="one")
    services.backups.create(url=pg_db, name="two")
    services.catalog.replace_checkpoints("database", [])  # the catalog is lost
    assert services.backups.list_backups() == []
    indexed, problems = services.backups.rebuild_catalog()
    assert (indexed, problems) == (2, [])
    assert [r.name for r in services.backups.list_backups()] == ["one", "two"]


def test_database_level_properties_are_restored(
    services: Services, pg_db: str, pg_names: list[str]
) -> None:
    name = pg_db.rsplit("/", 1)[1]
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int)")
        conn.execute(f"REVOKE CONNECT ON DATABASE {name} FROM PUBLIC")
        conn.execute(f"ALTER DATABASE {name} SET statement_timeout = '5s'")
        conn.execute(f"ALTER DATABASE {name} SET search_path = app, public")
        conn.execute(f"ALTER DATABASE {name} CONNECTION LIMIT 40")
        conn.execute(f"COMMENT ON DATABASE {name} IS 'the money'")
        # Set by the database's owner: a backup must not be killed by it.
        conn.execute(f"ALTER DATABASE {name} SET idle_in_transaction_session_timeout = '100ms'")
        conn.execute("INSERT INTO t SELECT generate_series(1, 200000)")
    services.backups.create(url=pg_db, name="props", jobs=2)
    pg_names.append("wrt_props_copy")
    services.backups.restore("props", new_db="wrt_props_copy", url=pg_db)

    query = """
        SELECT datacl::text, datconnlimit, shobj_description(oid, 'pg_database'),
               (SELECT setconfig::text FROM pg_db_role_setting
                WHERE setdatabase = d.oid AND setrole = 0)
        FROM pg_database d WHERE datname = %s"""
    with psycopg.connect(pg_db, autocommit=True) as conn:
        original = conn.execute(query, (name,)).fetchone()
        copy = conn.execute(query, ("wrt_props_copy",)).fetchone()
    assert original is not None and copy is not None
    assert copy[1:] == original[1:]
    assert "=Tc/" not in (copy[0] or "")  # PUBLIC lost CONNECT, as in the original
    assert sorted(copy[0].strip("{}").split(",")) == sorted(original[0].strip("{}").split(","))


def test_failed_restore_leaves_no_database_behind(services: Services, pg_db: str) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t AS SELECT generate_series(1, 10) AS id")
    services.backups.create(url=pg_db, name="liar")
    manifest = services.backups.manifest("liar")
    manifest.tables["public.t"] = 11  # a backup that does not restore to what it recorded
    (services.settings.backup_dir / manifest_key("liar")).write_bytes(manifest.to_json())
    with pytest.raises(IntegrityError, match="public.t: 10 rows, backup recorded 11"):
        services.backups.restore("liar", new_db="wrt_liar", url=pg_db)
    assert not pg_database_exists("wrt_liar")
    assert unclaimed_work_databases("restore") == []


def test_a_catalog_that_cannot_open_fails_a_backup_and_a_restore_before_they_commit(
    tmp_path: Path, pg_db: str, pg_names: list[str]
) -> None:
    """The catalog opens beside a backup's or a restore's work, which records its result in it
    only at its end: when it cannot open, the backup is removed before its manifest is written
    and the restore is refused before its target appears, as when it failed at the start."""
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t AS SELECT generate_series(1, 10) AS id")
    places = {"backup_dir": tmp_path / "b", "checkpoint_dir": tmp_path / "c"}
    with build_services(Settings(**places, catalog_url=f"sqlite:///{tmp_path}/ok.db")) as ok:
        ok.backups.create(url=pg_db, name="kept")
    (tmp_path / "a-file").write_text("")
    broken = Settings(**places, catalog_url=f"sqlite:///{tmp_path}/a-file/catalog.db")
    pg_names.append("wrt_unrecorded")
    with build_services(broken) as services:
        with pytest.raises(StorageError, match="a file of that name is in the way"):
            services.backups.create(url=pg_db, name="unrecorded")
        assert sorted(services.backups.storage.children(BACKUPS)) == ["kept"]
        with pytest.raises(StorageError, match="a file of that name is in the way"):
            services.backups.restore("kept", new_db="wrt_unrecorded", url=pg_db)
    assert not pg_database_exists("wrt_unrecorded")
    assert unclaimed_work_databases("restore") == []


def test_restoring_the_catalog_database_keeps_the_catalog(tmp_path: object, pg_db: str) -> None:
    from pathlib import Path

    from warroom.config import Settings
    from warroom.services import build_services

    base = Path(str(tmp_path))
    settings = Settings(backup_dir=base / "b", checkpoint_dir=base / "c", catalog_url=pg_db)
    with build_services(settings) as services:
        first = services.backups.create(url=pg_db, name="with-catalog")
        report = services.backups.restore("with-catalog", target_url=pg_db, confirm=True)
        names = {r.name for r in services.backups.list_backups()}
    assert names == {first.name, report.safety_backup}


def test_restoring_over_the_catalog_database_a_backup_without_it_keeps_the_catalog(
    tmp_path: Path, pg_db: str
) -> None:
    """A backup taken while the catalog was elsewhere holds none of its tables: restored over
    the database that now holds the catalog, the catalog comes back, the restore indexed."""
    places = {"backup_dir": tmp_path / "b", "checkpoint_dir": tmp_path / "c"}
    elsewhere = Settings(**places, catalog_url=f"sqlite:///{tmp_path}/elsewhere.db")
    with build_services(elsewhere) as services:
        services.backups.create(url=pg_db, name="without-catalog")
    with build_services(Settings(**places, catalog_url=pg_db)) as services:
        report = services.backups.restore("without-catalog", target_url=pg_db, confirm=True)
        names = {r.name for r in services.backups.list_backups()}
    assert names == {"without-catalog", report.safety_backup}


def _rewrite(services: Services, manifest: Manifest, name: str, **changes: Any) -> None:
    """Store ``manifest`` again as backup ``name``, with ``changes`` (a validly signed
    manifest, as another version of warroom would write it), with the parts it keeps."""
    storage = services.backups.storage
    for part in changes.get("parts", manifest.parts):
        source = backup_prefix(manifest.name) + part.name
        if part in manifest.parts:
            storage.put(backup_prefix(name) + part.name, storage.get(source))
    rewritten = dataclasses.replace(manifest, name=name, **changes)
    storage.put(manifest_key(name), [rewritten.to_json()])


def _store_data_archive(services: Services, url: str, backup: str, part: str) -> PartRecord:
    """Store ``pg_dump --data-only`` of every table as ``part`` of ``backup``."""
    archive = subprocess.run(
        [f"{PG_BIN}/pg_dump", "--format=custom", "--compress=0", "--data-only", url],
        capture_output=True,
        check=True,
    ).stdout
    encoder = Encoder()
    services.backups.storage.put(backup_prefix(backup) + part, encoder.encode([archive]))
    return PartRecord(part, "data", *encoder.digest)


def test_a_format_1_backup_restores_through_pg_restore(
    services: Services, pg_db: str, pg_names: list[str]
) -> None:
    """Backups written before copy parts keep all table data in one pg_dump archive."""
    fill_rich_database(pg_db)
    original = pg_snapshot(pg_db)
    manifest = services.backups.create(url=pg_db, name="new")
    data = _store_data_archive(services, pg_db, "old", "data")
    schema = [part for part in manifest.parts if part.role == "schema"]
    _rewrite(services, manifest, "old", parts=[data, *schema], format=1)

    pg_names.append("wrt_from_format_1")
    report = services.backups.restore("old", new_db=pg_names[0], url=pg_db, jobs=2)
    assert report.tables_checked == len(manifest.tables)
    restored = pg_snapshot(pg_url(pg_names[0]))
    assert (restored.schema, restored.tables) == (original.schema, original.tables)
    assert restored.sequences == original.sequences
    assert restored.large_objects == original.large_objects


def test_a_restore_that_loads_other_row_counts_is_refused(
    services: Services, pg_db: str, pg_names: list[str]
) -> None:
    fill_rich_database(pg_db)
    manifest = services.backups.create(url=pg_db, name="counted")
    claimed = {**manifest.tables, "public.customers": 301}
    _rewrite(services, manifest, "miscounted", tables=claimed)
    pg_names.append("wrt_miscounted")
    with pytest.raises(IntegrityError, match=r"public.customers: 300 rows, backup recorded 301"):
        services.backups.restore("miscounted", new_db=pg_names[0], url=pg_db)
    assert not pg_database_exists(pg_names[0])


def test_a_backup_holds_its_tables_and_says_when_it_cannot(services: Services, pg_db: str) -> None:
    """The backup locks every table (ACCESS SHARE, as pg_dump does) until it ends: a
    concurrent ALTER cannot rewrite a table under it, and a lock it cannot get in
    WARROOM_LOCK_WAIT_TIMEOUT fails the backup with a message that says so."""
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 10) g")
    impatient = services.settings.model_copy(update={"lock_wait_timeout": 1})
    with build_services(impatient) as quick, psycopg.connect(pg_db) as blocker:
        blocker.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(DatabaseError, match="conflicting lock .* for 1s"):
            quick.backups.create(url=pg_db, name="blocked")
    assert services.backups.list_backups() == []
    assert not (services.settings.backup_dir / "database" / "blocked").exists()


def test_work_databases_of_killed_restores_are_swept(
    services: Services, pg_db: str, pg_names: list[str]
) -> None:
    """A restore claims its staging database with a session advisory lock: a database whose
    claim is gone (its process killed) is dropped by the next restore; a claimed one is not."""
    running = f"warroom_restore_{secrets.token_hex(6)}"
    abandoned = f"warroom_scratch_{secrets.token_hex(6)}"
    pg_names.extend([running, abandoned, "wrt_after_sweep_1", "wrt_after_sweep_2"])
    services.backups.create(url=pg_db, name="small")
    with psycopg.connect(pg_url("postgres"), autocommit=True) as admin:
        with psycopg.connect(pg_url("postgres"), autocommit=True) as other_restore:
            other_restore.execute(
                "SELECT pg_advisory_lock(%s, hashtext(%s))", (WORK_CLAIM_KEY, running)
            )
            for name in (running, abandoned):
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            services.backups.restore("small", new_db="wrt_after_sweep_1", url=pg_db)
            assert pg_database_exists(running) and not pg_database_exists(abandoned)
        # The other restore's process is gone: its claim went with its connection.
        services.backups.restore("small", new_db="wrt_after_sweep_2", url=pg_db)
        assert not pg_database_exists(running)
    assert unclaimed_work_databases() == []


def test_a_latin1_database_with_accented_names_round_trips(
    services: Services, pg_names: list[str]
) -> None:
    """Names travel to psql in the database's own encoding."""
    source = "wrt_latin1_source"
    pg_names.extend([source, "wrt_latin1_restored"])
    with psycopg.connect(pg_url("postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL(
                "CREATE DATABASE {} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' "
                "TEMPLATE template0"
            ).format(sql.Identifier(source))
        )
    with psycopg.connect(pg_url(source), autocommit=True) as conn:
        conn.execute('CREATE TABLE "café" ("prénom" text, "straße" int)')
        conn.execute("""INSERT INTO "café" VALUES ('Zoë', 1), ('Ærø', 2), (NULL, 3)""")
    original = pg_snapshot(pg_url(source))

    manifest = services.backups.create(url=pg_url(source), name="latin1")
    assert manifest.tables == {"public.café": 3}
    services.backups.restore("latin1", new_db="wrt_latin1_restored", url=pg_url(source))
    restored = pg_snapshot(pg_url("wrt_latin1_restored"))
    assert (restored.schema, restored.tables) == (original.schema, original.tables)


def test_copy_parts_alone_decide_their_tables_rows(
    services: Services, pg_db: str, pg_names: list[str]
) -> None:
    """Were data-rest to hold rows of a table that a copy part holds (a pattern that failed to
    exclude it), the copy part, loaded after it into its truncated table, is what stays."""
    fill_rich_database(pg_db)
    original = pg_snapshot(pg_db)
    manifest = services.backups.create(url=pg_db, name="clean")
    overlapping = _store_data_archive(services, pg_db, "overlap", "data-rest")
    parts = [overlapping if p.name == "data-rest" else p for p in manifest.parts]
    _rewrite(services, manifest, "overlap", parts=parts)

    pg_names.append("wrt_overlap")
    services.backups.restore("overlap", new_db=pg_names[0], url=pg_db, jobs=3)
    assert pg_snapshot(pg_url(pg_names[0])).tables == original.tables
