"""Issue 12's findings: each a database that ``pg_dump -Fc`` + ``pg_restore`` round-trips and
that warroom's logical backup and restore once did not."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.conftest import (
    PG_URL,
    create_pg_database,
    drop_pg_database,
    pg_database_exists,
    pg_url,
)
from tests.dbcompare import pg_snapshot
from warroom.database import postgres
from warroom.database.postgres import load, predata
from warroom.database.postgres.predata import PreDataPlan
from warroom.services import Services

WORK_DATABASES = (
    "SELECT datname FROM pg_database WHERE datname ~ '^warroom_(restore|scratch|retired)_'"
)


def _run(url: str, script: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(script)


def _round_trip(services: Services, source: str, copy: str, jobs: int = 2) -> None:
    """Back up ``source`` and restore it as the new database ``copy``; both equal after."""
    services.backups.create(url=source, name="it", jobs=jobs)
    services.backups.restore("it", new_db=copy, url=source, jobs=jobs)
    original, restored = pg_snapshot(source), pg_snapshot(pg_url(copy))
    assert restored.schema == original.schema
    assert restored.tables == original.tables
    assert restored.sequences == original.sequences
    assert restored.matviews == original.matviews


def test_materialized_views_come_back_populated_as_they_were(
    services: Services, pg_db: str, pg_names: list[str]
) -> None:
    _run(
        pg_db,
        """
        CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 30) g;
        CREATE MATERIALIZED VIEW base AS SELECT id FROM t WHERE id % 2 = 0;
        CREATE VIEW evens AS SELECT id FROM base;
        CREATE MATERIALIZED VIEW top AS SELECT max(id) AS m FROM evens;
        CREATE MATERIALIZED VIEW empty AS SELECT id FROM t WITH NO DATA;
        CREATE MATERIALIZED VIEW on_empty AS SELECT count(*) FROM t WITH NO DATA;
        """,
    )
    pg_names.append("wrt_matviews")
    services.backups.create(url=pg_db, name="mv")
    report = services.backups.restore("mv", new_db="wrt_matviews", url=pg_db)
    assert report.matviews_refreshed == 2
    with psycopg.connect(pg_url("wrt_matviews")) as conn:
        populated = conn.execute(
            "SELECT relname, relispopulated FROM pg_class WHERE relkind = 'm' ORDER BY 1"
        ).fetchall()
        assert populated == [("base", True), ("empty", False), ("on_empty", False), ("top", True)]
        assert conn.execute("SELECT m FROM top").fetchone() == (30,)


def test_trigger_states_on_partitions_keep_their_order(
    services: Services, pg_db: str, pg_names: list[str]
) -> None:
    _run(
        pg_db,
        """
        CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
        CREATE TABLE m (id int PRIMARY KEY, at date) PARTITION BY RANGE (id);
        CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (100);
        CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (100) TO (200);
        CREATE TABLE m3 PARTITION OF m FOR VALUES FROM (200) TO (300);
        CREATE TRIGGER a AFTER INSERT ON m FOR EACH ROW EXECUTE FUNCTION noop();
        ALTER TABLE m1 DISABLE TRIGGER a;
        ALTER TABLE m2 ENABLE REPLICA TRIGGER a;
        ALTER TABLE m3 ENABLE ALWAYS TRIGGER a;
        INSERT INTO m SELECT g, DATE '2026-01-01' + g FROM generate_series(0, 299) g;
        """,
    )
    pg_names.append("wrt_triggers")
    _round_trip(services, pg_db, "wrt_triggers")


@pytest.mark.parametrize(
    "key",
    [
        "CREATE TYPE k AS ENUM ('b', 'a', 'c', 'd', 'e', 'f', 'g', 'h')",
        "CREATE TYPE k AS RANGE (subtype = int4)",
        "CREATE TYPE e AS ENUM ('x', 'y', 'z'); CREATE DOMAIN k AS e",
    ],
    ids=["enum", "range", "domain-over-enum"],
)
def test_hash_partitions_on_oid_dependent_keys_load_through_their_root(
    services: Services, pg_db: str, pg_names: list[str], key: str
) -> None:
    values = {
        "enum": "(ARRAY['a','b','c','d','e','f','g','h'])[1 + g % 8]::k",
        "range": "k(g, g + 1 + g % 5)",
        "domain-over-enum": "(ARRAY['x','y','z'])[1 + g % 3]::k",
    }
    kind = "range" if "RANGE" in key else "domain-over-enum" if "DOMAIN" in key else "enum"
    _run(
        pg_db,
        f"""
        {key};
        CREATE TABLE h (key k, id int) PARTITION BY HASH (key);
        CREATE TABLE h0 PARTITION OF h FOR VALUES WITH (MODULUS 3, REMAINDER 0);
        CREATE TABLE h1 PARTITION OF h FOR VALUES WITH (MODULUS 3, REMAINDER 1)
            PARTITION BY RANGE (id);
        CREATE TABLE h1a PARTITION OF h1 FOR VALUES FROM (MINVALUE) TO (50);
        CREATE TABLE h1b PARTITION OF h1 FOR VALUES FROM (50) TO (MAXVALUE);
        CREATE TABLE h2 PARTITION OF h FOR VALUES WITH (MODULUS 3, REMAINDER 2);
        CREATE INDEX ON h (id);
        INSERT INTO h SELECT {values[kind]}, g FROM generate_series(1, 100) g;
        """,
    )
    pg_names.append("wrt_hash")
    services.backups.create(url=pg_db, name="it", jobs=2)
    services.backups.restore("it", new_db="wrt_hash", url=pg_db, jobs=2)
    with psycopg.connect(pg_db) as conn:
        original = conn.execute("SELECT key::text, id FROM h ORDER BY id").fetchall()
    with psycopg.connect(pg_url("wrt_hash")) as conn:
        assert conn.execute("SELECT key::text, id FROM h ORDER BY id").fetchall() == original


def test_a_database_with_a_subscription_restores_and_is_replaced(
    services: Services, pg_db: str, pg_names: list[str]
) -> None:
    """Restored as pg_restore leaves it (disabled, no slot); its restore test, and restores over
    it, leave no work database behind; the replaced one is dropped."""
    _run(
        pg_db,
        """
        CREATE TABLE t (id int PRIMARY KEY);
        INSERT INTO t VALUES (1), (2);
        CREATE PUBLICATION pub FOR TABLE t;
        CREATE SUBSCRIPTION sub CONNECTION 'host=127.0.0.1 dbname=nowhere'
            PUBLICATION pub WITH (connect = false, slot_name = 'sub_slot');
        """,
    )
    services.backups.create(url=pg_db, name="subs")
    report = services.backups.verify("subs", restore_test=True, url=pg_db)
    assert report.restore_tested
    pg_names.append("wrt_subs")
    services.backups.restore("subs", new_db="wrt_subs", url=pg_db)
    services.backups.restore("subs", target_url=pg_url("wrt_subs"), confirm=True)
    services.backups.restore("subs", target_url=pg_url("wrt_subs"), confirm=True)
    with psycopg.connect(pg_url("wrt_subs")) as conn:
        assert conn.execute(
            "SELECT subname, subenabled, subslotname FROM pg_subscription "
            "WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall() == [("sub", False, "sub_slot")]
        assert conn.execute(WORK_DATABASES).fetchall() == []
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)


@pytest.mark.parametrize("encoding", ["SQL_ASCII", "LATIN1", "WIN1252", "EUC_JP"])
def test_databases_of_other_encodings_round_trip(
    services: Services, pg_names: list[str], encoding: str
) -> None:
    source = create_pg_database("wrt_enc")
    pg_names.extend([source, "wrt_enc_copy"])
    drop_pg_database(source)
    with psycopg.connect(pg_url("postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL(
                "CREATE DATABASE {} ENCODING {} LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            ).format(sql.Identifier(source), sql.Literal(encoding))
        )
    name = "ümlaut" if encoding != "SQL_ASCII" else "plain"
    # SQL_ASCII holds bytes in no encoding at all.
    odd = r"convert_from('\xe9ff', 'SQL_ASCII')" if encoding == "SQL_ASCII" else "'é'"
    _run(
        pg_url(source),
        f"""
        CREATE TABLE "{name}" (id serial PRIMARY KEY, v text);
        INSERT INTO "{name}" (v) VALUES ('a'), (E'back\\\\slash'), (NULL), ({odd});
        CREATE MATERIALIZED VIEW mv AS SELECT count(*) FROM "{name}";
        """,
    )
    _round_trip(services, pg_url(source), "wrt_enc_copy", jobs=1)


def test_database_settings_of_every_shape_come_back_exactly(
    services: Services, pg_db: str, pg_names: list[str]
) -> None:
    name = sql.Identifier(pg_db.rsplit("/", 1)[1])
    with psycopg.connect(pg_db, autocommit=True) as conn:
        for statement in [
            'ALTER DATABASE {} SET search_path = "it\'s", "a,b", public, "$user"',
            "ALTER DATABASE {} SET temp_tablespaces = ''",
            "ALTER DATABASE {} SET work_mem = '5MB'",
            "ALTER DATABASE {} SET application_name = 'x, \"y\" z'",
            'ALTER ROLE postgres IN DATABASE {} SET search_path = "Q", b',
        ]:
            conn.execute(sql.SQL(statement).format(name))  # type: ignore[arg-type]
        conn.execute("CREATE TABLE t (id int)")
    services.backups.create(url=pg_db, name="settings")
    assert services.backups.verify("settings", restore_test=True, url=pg_db).restore_tested
    pg_names.append("wrt_settings")
    services.backups.restore("settings", new_db="wrt_settings", url=pg_db)
    query = """
        SELECT coalesce(pg_get_userbyid(s.setrole), ''), s.setconfig
        FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
        WHERE d.datname = %s ORDER BY 1"""
    with psycopg.connect(pg_db) as conn:
        original = conn.execute(query, (pg_db.rsplit("/", 1)[1],)).fetchall()
        assert conn.execute(query, ("wrt_settings",)).fetchall() == original
    assert len(original) == 2


def test_a_restore_test_applies_the_database_properties(
    services: Services, pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup whose properties cannot be applied fails its restore test, as its restore."""
    _run(pg_db, "CREATE TABLE t (id int)")
    manifest = services.backups.create(url=pg_db, name="props")
    applied: list[str] = []
    original = postgres.PostgresEngine.apply_properties

    def spy(engine: postgres.PostgresEngine, database: dict[str, object]) -> None:
        applied.append(engine.database_name)
        original(engine, database)

    monkeypatch.setattr(postgres.PostgresEngine, "apply_properties", spy)
    services.backups.verify("props", restore_test=True, url=pg_db)
    assert len(applied) == 1 and applied[0].startswith("warroom_scratch_")
    assert manifest.database["encoding"] == "UTF8"


def test_many_tables_back_up_past_the_argument_limit(
    services: Services, pg_db: str, pg_names: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backup's command lines do not grow with the number of tables: under a 64 KiB
    argument limit (checked on every program the engine starts) 400 long-named tables pass."""
    long = "t" * 50
    _run(
        pg_db,
        "DO $$ BEGIN FOR i IN 1..400 LOOP "
        f"EXECUTE format('CREATE TABLE %I (id serial PRIMARY KEY, v text)', '{long}' || i); "
        f"EXECUTE format('INSERT INTO %I (v) VALUES (''x'')', '{long}' || i); "
        "END LOOP; END $$",
    )
    started = postgres.PostgresEngine._run

    def bounded(engine: postgres.PostgresEngine, tool: object, args: list[str], **kw: object):  # type: ignore[no-untyped-def]
        assert sum(len(arg) + 1 for arg in args) < 64 << 10, "command line grows with tables"
        return started(engine, tool, args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(postgres.PostgresEngine, "_run", bounded)
    pg_names.append("wrt_many")
    _round_trip(services, pg_db, "wrt_many")
    assert not pg_database_exists("wrt_many_missing")


def test_a_parallel_pre_data_that_fails_starts_over_in_one_session(
    services: Services,
    pg_names: list[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A pre-data plan that fails (here one made wrong on purpose: a table in a parallel list
    and in the last, which fails once every table is in) costs time, not the restore: the
    database is created again, with the same encoding and owner, and its pre-data restored in
    one session, as pg_restore does. Nothing of the failed attempt remains."""
    role = f"wrt_owner_{uuid.uuid4().hex[:8]}"
    source = f"wrt_latin1_{uuid.uuid4().hex[:8]}"
    _run(PG_URL, f'CREATE ROLE "{role}"')
    try:
        _run(
            PG_URL,
            f"CREATE DATABASE {source} TEMPLATE template0 ENCODING 'LATIN1'"
            f" LC_COLLATE 'C' LC_CTYPE 'C' OWNER \"{role}\"",
        )
        pg_names.extend([source, "wrt_started_over"])
        _run(
            pg_url(source),
            "DO $$ BEGIN FOR i IN 1..20 LOOP "
            "EXECUTE format('CREATE TABLE t%s (id serial PRIMARY KEY, v text)', i); "
            "EXECUTE format('INSERT INTO t%s (v) VALUES (''caf'' || chr(233))', i); "
            "END LOOP; END $$",
        )
        monkeypatch.setattr(predata, "MIN_PARALLEL_ENTRIES", 0)
        planned: list[PreDataPlan] = []

        def wrong(*args: Any) -> PreDataPlan | None:
            plan = predata.plan_pre_data(*args)
            assert plan is not None
            table = next(line for line in plan.parallel[0] if " TABLE " in line)
            planned.append(plan)
            return PreDataPlan(plan.first, plan.parallel, [*plan.last, table])

        monkeypatch.setattr(load, "plan_pre_data", wrong)
        with caplog.at_level(logging.WARNING, logger="warroom.database"):
            _round_trip(services, pg_url(source), "wrt_started_over")
        assert planned, "the restore did not plan its pre-data"
        assert any("starting over in one" in r.getMessage() for r in caplog.records)
        with psycopg.connect(pg_url("wrt_started_over")) as conn:
            assert conn.execute(
                "SELECT pg_encoding_to_char(encoding), pg_get_userbyid(datdba) FROM pg_database"
                " WHERE datname = current_database()"
            ).fetchone() == ("LATIN1", role)
        with psycopg.connect(PG_URL) as conn:
            assert conn.execute(WORK_DATABASES).fetchall() == []
    finally:
        for name in pg_names:
            drop_pg_database(name)
        pg_names.clear()
        _run(PG_URL, f'DROP ROLE IF EXISTS "{role}"')


def test_a_cast_keeps_the_meaning_of_the_defaults_parsed_after_it(
    services: Services, pg_db: str, pg_names: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A default parsed with a cast calls the cast's function; without the cast it is another
    expression, which pg_dump prints the same way (``DEFAULT 255``). The cast is listed after
    a table here, so no plan may create the table with the default before it."""
    _run(
        pg_db,
        """
        CREATE SCHEMA a;
        CREATE TABLE a.t (id int);
        CREATE TYPE a.wraps AS (t a.t);
        CREATE CAST (integer AS text) WITH FUNCTION pg_catalog.to_hex(integer) AS ASSIGNMENT;
        CREATE TABLE a.u (id int, label text DEFAULT 255);
        CREATE TABLE a.v (id int);
        """,
    )
    monkeypatch.setattr(predata, "MIN_PARALLEL_ENTRIES", 0)
    pg_names.append("wrt_cast_meaning")
    services.backups.create(url=pg_db, name="cast")
    services.backups.restore("cast", new_db="wrt_cast_meaning", url=pg_db)
    for url in (pg_db, pg_url("wrt_cast_meaning")):
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("INSERT INTO a.u (id) VALUES (1) RETURNING label").fetchone()
            assert row == ("ff",), url
