"""Fidelity: a logical backup restores every family of PostgreSQL objects as ``pg_dump -Fc`` +
``pg_restore`` does, or closer to the original.

One database per family. Each is backed up with warroom and restored (``--jobs 2``: parts load
in parallel), and also dumped with ``pg_dump -Fc`` and restored with ``pg_restore``; the three
are compared with :func:`tests.dbcompare.pg_snapshot`: pg_dump's schema entry by entry, an
ordered hash of every table's and populated materialized view's rows, sequences, large objects
(data and metadata), and the database's own properties (which pg_restore does not restore
without ``--create``: there warroom must equal the original alone).

Not covered: security labels (stock PostgreSQL has no label provider).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.conftest import PG_URL, drop_pg_database, pg_url
from tests.dbcompare import PG_BIN, PgSnapshot, pg_snapshot
from warroom.database.postgres import load, predata
from warroom.database.postgres.predata import PreDataPlan
from warroom.services import Services

ROLE = f"wrt_fidelity_{uuid.uuid4().hex[:8]}"

PARTITIONING = """
CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.note := coalesce(NEW.note, '') || '+'; RETURN NEW; END $$;
CREATE TABLE r (id int, at date NOT NULL, note text, PRIMARY KEY (id, at))
    PARTITION BY RANGE (at);
CREATE TABLE r_2026 PARTITION OF r FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')
    PARTITION BY LIST (id);
CREATE TABLE r_2026_small PARTITION OF r_2026 FOR VALUES IN (1, 2, 3, 4, 5);
CREATE TABLE r_2026_rest PARTITION OF r_2026 DEFAULT;
CREATE TABLE r_later (note text, x int, at date NOT NULL, id int NOT NULL);
ALTER TABLE r_later DROP COLUMN x;
ALTER TABLE r ATTACH PARTITION r_later FOR VALUES FROM ('2027-01-01') TO (MAXVALUE);
CREATE TABLE r_default PARTITION OF r DEFAULT;
CREATE INDEX r_note ON r (note);
CREATE INDEX r_later_only ON r_later (id) WHERE id > 10;
CREATE TRIGGER r_stamp BEFORE INSERT ON r FOR EACH ROW EXECUTE FUNCTION stamp();
CREATE TRIGGER r_after AFTER UPDATE ON r FOR EACH ROW EXECUTE FUNCTION stamp();
ALTER TABLE r_2026_small DISABLE TRIGGER r_stamp;
ALTER TABLE r_later ENABLE REPLICA TRIGGER r_after;
ALTER TABLE r_default ENABLE ALWAYS TRIGGER r_stamp;
CREATE TRIGGER later_own BEFORE INSERT ON r_later FOR EACH ROW EXECUTE FUNCTION stamp();
ALTER TABLE r_later DISABLE TRIGGER later_own;
CREATE RULE r_default_no_delete AS ON DELETE TO r_default DO INSTEAD NOTHING;
CREATE TABLE l (region text, v int) PARTITION BY LIST (region);
CREATE TABLE l_eu PARTITION OF l FOR VALUES IN ('eu', 'uk');
CREATE TABLE l_null PARTITION OF l FOR VALUES IN (NULL);
CREATE TABLE h (id bigint PRIMARY KEY, v text) PARTITION BY HASH (id);
CREATE TABLE h0 PARTITION OF h FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE h1 PARTITION OF h FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE h_ref (h_id bigint REFERENCES h, n int);
INSERT INTO r SELECT g, DATE '2026-01-01' + g * 3, 'n' || g FROM generate_series(1, 300) g;
INSERT INTO l VALUES ('eu', 1), ('uk', 2), (NULL, 3);
INSERT INTO h SELECT g, md5(g::text) FROM generate_series(1, 200) g;
INSERT INTO h_ref SELECT g, g FROM generate_series(1, 200, 7) g;
"""

KEYS = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'ecstatic', 'meh');
CREATE DOMAIN mood_d AS mood;
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE TYPE span AS RANGE (subtype = numeric);
CREATE TABLE by_enum (m mood, id int) PARTITION BY HASH (m);
CREATE TABLE by_enum_0 PARTITION OF by_enum FOR VALUES WITH (MODULUS 3, REMAINDER 0);
CREATE TABLE by_enum_1 PARTITION OF by_enum FOR VALUES WITH (MODULUS 3, REMAINDER 1);
CREATE TABLE by_enum_2 PARTITION OF by_enum FOR VALUES WITH (MODULUS 3, REMAINDER 2);
CREATE TABLE by_domain (m mood_d, p positive, id int) PARTITION BY HASH (m, p);
CREATE TABLE by_domain_0 PARTITION OF by_domain FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE by_domain_1 PARTITION OF by_domain FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE by_range (s span, id int) PARTITION BY HASH (s);
CREATE TABLE by_range_0 PARTITION OF by_range FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE by_range_1 PARTITION OF by_range FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE by_multirange (s nummultirange, id int) PARTITION BY HASH (s);
CREATE TABLE by_multirange_0 PARTITION OF by_multirange FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE by_multirange_1 PARTITION OF by_multirange FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE by_expression (t text, id int) PARTITION BY HASH (lower(t));
CREATE TABLE by_expression_0 PARTITION OF by_expression FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE by_expression_1 PARTITION OF by_expression FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE enum_list (m mood, id int) PARTITION BY LIST (m);
CREATE TABLE enum_list_a PARTITION OF enum_list FOR VALUES IN ('sad', 'ok');
CREATE TABLE enum_list_b PARTITION OF enum_list DEFAULT;
CREATE TABLE enum_range (m mood, id int) PARTITION BY RANGE (m);
CREATE TABLE enum_range_a PARTITION OF enum_range FOR VALUES FROM (MINVALUE) TO ('happy');
CREATE TABLE enum_range_b PARTITION OF enum_range FOR VALUES FROM ('happy') TO (MAXVALUE);
CREATE INDEX ON by_enum (id);
INSERT INTO by_enum SELECT (enum_range(NULL::mood))[1 + g % 5], g FROM generate_series(1, 100) g;
INSERT INTO by_domain
    SELECT (enum_range(NULL::mood))[1 + g % 5], g, g FROM generate_series(1, 60) g;
INSERT INTO by_range SELECT span(g, g + g % 7), g FROM generate_series(1, 60) g;
INSERT INTO by_multirange
    SELECT nummultirange(numrange(g, g + 1), numrange(g + 5, g + 9)), g
    FROM generate_series(1, 60) g;
INSERT INTO by_expression SELECT 'Key ' || g, g FROM generate_series(1, 60) g;
INSERT INTO enum_list SELECT (enum_range(NULL::mood))[1 + g % 5], g FROM generate_series(1, 50) g;
INSERT INTO enum_range SELECT (enum_range(NULL::mood))[1 + g % 5], g FROM generate_series(1, 50) g;
"""

MATVIEWS = """
CREATE TABLE facts (id int PRIMARY KEY, k text);
INSERT INTO facts SELECT g, 'k' || g % 4 FROM generate_series(1, 100) g;
CREATE MATERIALIZED VIEW m1 AS SELECT k, count(*) AS n FROM facts GROUP BY k;
CREATE UNIQUE INDEX m1_k ON m1 (k);
CREATE VIEW v1 AS SELECT k, n * 2 AS n2 FROM m1;
CREATE MATERIALIZED VIEW m2 AS SELECT sum(n2) AS total FROM v1;
CREATE MATERIALIZED VIEW m3 AS SELECT total + 1 AS t FROM m2, m1 WHERE m1.k = 'k1';
CREATE MATERIALIZED VIEW unpopulated AS SELECT * FROM facts WITH NO DATA;
CREATE MATERIALIZED VIEW on_unpopulated AS SELECT count(*) FROM facts;
REFRESH MATERIALIZED VIEW on_unpopulated;
CREATE MATERIALIZED VIEW stale AS SELECT count(*) FROM facts;
INSERT INTO facts VALUES (1000, 'new');
"""

INHERITANCE = """
CREATE TABLE base (id int, label text CHECK (label <> ''),
                   CONSTRAINT only_base CHECK (id > 0) NO INHERIT);
CREATE TABLE child (extra jsonb) INHERITS (base);
CREATE TABLE other_parent (flag boolean DEFAULT true);
CREATE TABLE grandchild (deep int) INHERITS (child, other_parent);
INSERT INTO base VALUES (1, 'base');
INSERT INTO child VALUES (-2, 'child', '{"a": 1}');
INSERT INTO grandchild VALUES (-3, 'gc', NULL, false, 7);
CREATE INDEX child_label ON child (label);
"""

GENERATED = """
CREATE TABLE g (
    id int GENERATED ALWAYS AS IDENTITY (START 100 INCREMENT 7),
    other bigint GENERATED BY DEFAULT AS IDENTITY,
    s serial,
    a int, b int,
    total int GENERATED ALWAYS AS (a + b) STORED
);
INSERT INTO g (a, b) SELECT g, g * 2 FROM generate_series(1, 40) g;
INSERT INTO g (other, a, b) VALUES (-5, 1, 1);
CREATE SEQUENCE untouched;
CREATE SEQUENCE set_not_called;
SELECT setval('set_not_called', 77, false);
CREATE SEQUENCE cycling MINVALUE -10 MAXVALUE 10 INCREMENT -3 CYCLE;
SELECT nextval('cycling') FROM generate_series(1, 9);
CREATE UNLOGGED SEQUENCE unlogged_seq;
SELECT setval('unlogged_seq', 5);
CREATE TABLE only_generated (total int GENERATED ALWAYS AS (1) STORED);
INSERT INTO only_generated DEFAULT VALUES;
"""

REPLICATION = """
CREATE SCHEMA pubs;
CREATE TABLE pubs.t (id int PRIMARY KEY, a text, b text);
CREATE TABLE public.u (id int PRIMARY KEY);
INSERT INTO pubs.t VALUES (1, 'a', 'b');
CREATE PUBLICATION everything FOR ALL TABLES;
CREATE PUBLICATION filtered FOR TABLE pubs.t (id, a) WHERE (id > 0) WITH (publish = 'insert');
CREATE PUBLICATION by_schema FOR TABLES IN SCHEMA pubs;
CREATE SUBSCRIPTION sub CONNECTION 'host=127.0.0.1 dbname=nowhere'
    PUBLICATION everything WITH (connect = false, slot_name = 'fidelity_slot');
CREATE SUBSCRIPTION sub_no_slot CONNECTION 'host=127.0.0.1 dbname=nowhere'
    PUBLICATION everything WITH (connect = false);
"""

SECURITY = f"""
CREATE TABLE secrets (id int, owner_name text, v text);
INSERT INTO secrets VALUES (1, 'a', 'x'), (2, 'b', 'y');
ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY mine ON secrets USING (owner_name = current_user);
CREATE POLICY restrictive ON secrets AS RESTRICTIVE FOR UPDATE TO {ROLE} USING (id > 0);
CREATE SCHEMA app;
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO {ROLE};
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE {ROLE} GRANT USAGE ON SEQUENCES TO PUBLIC;
CREATE TABLE app.t (id int, c text);
GRANT UPDATE (c) ON app.t TO {ROLE} WITH GRANT OPTION;
REVOKE ALL ON secrets FROM PUBLIC;
CREATE TABLE owned (id int);
ALTER TABLE owned OWNER TO {ROLE};
CREATE FUNCTION on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN RAISE NOTICE 'ddl: %', tg_tag; END $$;
CREATE EVENT TRIGGER noisy ON ddl_command_end EXECUTE FUNCTION on_ddl();
CREATE EVENT TRIGGER quiet ON sql_drop WHEN TAG IN ('DROP TABLE') EXECUTE FUNCTION on_ddl();
ALTER EVENT TRIGGER quiet DISABLE;
SELECT lo_from_bytea(4242, 'large object data');
SELECT lo_from_bytea(4243, '');
COMMENT ON LARGE OBJECT 4242 IS 'a comment';
GRANT SELECT ON LARGE OBJECT 4242 TO {ROLE};
ALTER LARGE OBJECT 4243 OWNER TO {ROLE};
COMMENT ON TABLE secrets IS 'keep out';
COMMENT ON COLUMN secrets.v IS 'the value';
COMMENT ON POLICY mine ON secrets IS 'owners only';
COMMENT ON SCHEMA app IS 'the app';
COMMENT ON EVENT TRIGGER noisy IS 'says what it sees';
"""

EXTENSIONS = """
CREATE EXTENSION pg_trgm;
CREATE EXTENSION hstore;
CREATE EXTENSION citext;
CREATE EXTENSION ltree;
CREATE SCHEMA ext;
CREATE EXTENSION cube SCHEMA ext;
CREATE TABLE docs (id int PRIMARY KEY, body text, attrs hstore, email citext UNIQUE,
                   path ltree, c ext.cube);
CREATE INDEX docs_trgm ON docs USING gin (body gin_trgm_ops);
CREATE INDEX docs_path ON docs USING gist (path);
INSERT INTO docs SELECT g, 'body ' || g, hstore('k', g::text), 'U' || g || '@X.org',
                        ('top.n' || g)::ltree, ext.cube(g, g + 1)
FROM generate_series(1, 50) g;
"""

NAMES = r'''
CREATE SCHEMA "Sch ""q"" ü";
CREATE TYPE "Sch ""q"" ü"."mood, or ""not""" AS ENUM ('it''s', 'a,b', 'c"d', 'ü');
CREATE TABLE "Sch ""q"" ü"."tab
newline" ("col ""1""" int PRIMARY KEY, "ёж" text, "select" "Sch ""q"" ü"."mood, or ""not""");
CREATE INDEX "idx.with.dots" ON "Sch ""q"" ü"."tab
newline" ("ёж");
CREATE TABLE "a b" (id int);
CREATE TABLE "A B" (id int);
CREATE SEQUENCE "Sch ""q"" ü"."seq.dots";
SELECT setval('"Sch ""q"" ü"."seq.dots"', 12);
CREATE FUNCTION "Sch ""q"" ü"."fn ""x"""() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RETURN NEW; END $$;
CREATE TRIGGER "trig ""t""" BEFORE INSERT ON "Sch ""q"" ü"."tab
newline" FOR EACH ROW EXECUTE FUNCTION "Sch ""q"" ü"."fn ""x"""();
ALTER TABLE "Sch ""q"" ü"."tab
newline" DISABLE TRIGGER "trig ""t""";
INSERT INTO "Sch ""q"" ü"."tab
newline" VALUES (1, 'ü', 'it''s'), (2, NULL, 'a,b'), (3, '"', 'c"d');
INSERT INTO "a b" VALUES (1);
INSERT INTO "A B" VALUES (2), (3);
CREATE MATERIALIZED VIEW "Sch ""q"" ü"."mv ""m""" AS SELECT count(*) FROM "a b";
'''

DATA = r"""
CREATE TYPE pair AS (a text, b int[]);
CREATE TABLE awkward (
    id int PRIMARY KEY, t text, b bytea, f float8, n numeric, r real, ts timestamptz, d date,
    arr text[], j jsonb, x xml, p pair, i interval, bits bit varying, u uuid
);
INSERT INTO awkward VALUES
    (1, E'\\.', '\x00ff5c2e0a', 'NaN', 'NaN', '-Infinity', 'infinity', '-infinity',
     ARRAY[NULL, 'a"b', 'c\d', ''], '{"k": "é\u0041 \\n"}', '<a>&amp;</a>',
     ROW('x,y', ARRAY[1, NULL]),
     '1 year -2 days 03:04:05.678', B'1010', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
    (2, E'line\n\\.\nafter\r\ttab\\N', '', 'Infinity', 'Infinity', '-0', '2026-03-29 02:30+02',
     '0001-01-01 BC', '{}', 'null', NULL, NULL, '-178000000 years', B'', NULL),
    (3, '', NULL, '-Infinity', '-Infinity', 1.5e-45, 'epoch', 'epoch', NULL, '[]', '',
     ROW(NULL, NULL),
     NULL, NULL, NULL),
    (4, NULL, decode(repeat('5c', 3000), 'hex'), 4.9e-324, 1e-1000, 3.4e38, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL);
CREATE TABLE toasted (id int, compressible text, external text, big bytea);
ALTER TABLE toasted ALTER COLUMN external SET STORAGE EXTERNAL;
INSERT INTO toasted SELECT g, repeat('abc', 100000 * g),
    (SELECT string_agg(md5(g::text || s::text), '') FROM generate_series(1, 4000) s),
    decode((SELECT string_agg(md5(s::text || g::text), '') FROM generate_series(1, 2000) s), 'hex')
FROM generate_series(1, 3) g;
CREATE UNLOGGED TABLE unlogged (id int);
INSERT INTO unlogged VALUES (1), (2);
CREATE TABLE empty ();
CREATE TABLE no_columns ();
INSERT INTO no_columns DEFAULT VALUES;
INSERT INTO no_columns DEFAULT VALUES;
"""

ODD_BYTES = r"""
CREATE TABLE bytes (id int, v text, "nom" text);
INSERT INTO bytes VALUES (1, E'caf\xe9', E'\xe9t\xe9'), (2, E'\\.', NULL), (3, E'\xff\xfe', '');
CREATE MATERIALIZED VIEW bytes_mv AS SELECT v FROM bytes;
"""

LATIN1_NAMES = r'''
CREATE SCHEMA "Schéma ""q""";
CREATE TYPE "Schéma ""q""".humeur AS ENUM ('ça', 'là', 'it''s');
CREATE TABLE "Schéma ""q"""."tablé
deux" ("clé" int, h "Schéma ""q""".humeur) PARTITION BY HASH (h);
CREATE TABLE "Schéma ""q""".p0 PARTITION OF "Schéma ""q"""."tablé
deux" FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE "Schéma ""q""".p1 PARTITION OF "Schéma ""q"""."tablé
deux" FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO "Schéma ""q"""."tablé
deux" SELECT g, (enum_range(NULL::"Schéma ""q""".humeur))[1 + g % 3] FROM generate_series(1, 30) g;
COMMENT ON TABLE "Schéma ""q""".p0 IS 'commentaire é';
'''

# What a parallel pre-data plan must keep in order: tables that need other tables (a column of
# another's row type, a typed table, inheritance, partitions, a shared sequence), a function
# on a table's row type used by a later default, views across tables, privileges of objects
# in and out of the archive (schema public's), comments, and many independent tables.
PRE_DATA = f"""
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO {ROLE};
CREATE SCHEMA s2;
CREATE TYPE pair AS (a int, b text);
CREATE TABLE base_row (id serial PRIMARY KEY, label text DEFAULT 'x');
CREATE TABLE holds_row (r base_row, p pair, id bigint GENERATED ALWAYS AS IDENTITY);
CREATE TABLE typed OF pair;
CREATE TABLE s2.parent (id int, at date);
CREATE TABLE s2.kid (extra text) INHERITS (s2.parent);
CREATE TABLE parted (id int, k text) PARTITION BY LIST (k);
CREATE TABLE parted_a PARTITION OF parted FOR VALUES IN ('a');
CREATE TABLE parted_rest PARTITION OF parted DEFAULT;
CREATE SEQUENCE shared_seq;
CREATE TABLE uses_shared_1 (id bigint DEFAULT nextval('shared_seq'));
CREATE TABLE uses_shared_2 (id bigint DEFAULT nextval('shared_seq'));
ALTER SEQUENCE shared_seq OWNED BY uses_shared_2.id;
CREATE FUNCTION first_label(base_row) RETURNS text LANGUAGE sql AS 'SELECT $1.label';
CREATE TABLE uses_function (r base_row, l text DEFAULT first_label(ROW(1, 'y')::base_row));
CREATE VIEW joined AS SELECT b.id, u.l FROM base_row b JOIN uses_function u ON true;
CREATE TABLE s2.checked (v int CHECK (v > 0), w int DEFAULT 7);
CREATE FUNCTION count_base() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM public.base_row';
CREATE FUNCTION count_atomic() RETURNS bigint LANGUAGE sql
    BEGIN ATOMIC SELECT count(*) FROM holds_row; END;
CREATE TABLE checks_count (n bigint CHECK (count_base() >= 0) DEFAULT count_atomic());
CREATE FUNCTION twice(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 2';
CREATE DOMAIN even AS int CHECK (VALUE = twice(VALUE / 2));
CREATE TABLE generated_by (a even, b int GENERATED ALWAYS AS (twice(a)) STORED);
CREATE TYPE wraps AS (r base_row, n int);
CREATE TABLE holds_wrap (w wraps);
CREATE VIEW over_joined AS SELECT j.id, g.b FROM joined j, generated_by g;
CREATE TABLE s2.other_seq (id bigint DEFAULT nextval('public.base_row_id_seq'));
COMMENT ON TABLE typed IS 'typed';
COMMENT ON COLUMN s2.checked.v IS 'positive';
GRANT SELECT ON base_row TO {ROLE};
GRANT INSERT (label) ON base_row TO {ROLE};
GRANT USAGE ON SEQUENCE shared_seq TO {ROLE};
GRANT SELECT ON joined TO {ROLE};
DO $$ BEGIN FOR i IN 1..30 LOOP
    EXECUTE format('CREATE TABLE many_%s (id serial PRIMARY KEY, v text)', i);
    EXECUTE format('INSERT INTO many_%s (v) SELECT md5(g::text) FROM generate_series(1, 5) g', i);
    EXECUTE format('COMMENT ON TABLE many_%s IS %L', i, 'many ' || i);
END LOOP; END $$;
INSERT INTO base_row (label) VALUES ('one'), ('two');
INSERT INTO holds_row (r, p) SELECT b, ROW(b.id, b.label)::pair FROM base_row b;
INSERT INTO typed VALUES (1, 'a');
INSERT INTO s2.kid VALUES (1, '2026-01-01', 'e');
INSERT INTO parted VALUES (1, 'a'), (2, 'b');
INSERT INTO uses_shared_1 DEFAULT VALUES;
INSERT INTO uses_shared_2 DEFAULT VALUES;
INSERT INTO uses_function (r) SELECT b FROM base_row b;
INSERT INTO s2.checked (v) VALUES (3);
INSERT INTO checks_count DEFAULT VALUES;
INSERT INTO generated_by (a) VALUES (4), (6);
INSERT INTO holds_wrap SELECT ROW(b, 1)::wraps FROM base_row b;
INSERT INTO s2.other_seq DEFAULT VALUES;
"""

# What once made a plan fail (then start over), one family each: a cast listed after a table
# that a default needs, a child of two parents whose defaults would be set before it exists,
# and tables whose array type names collide (their names' first 62 bytes alike; "a", "_a").
CAST_AFTER_A_TABLE = """
CREATE SCHEMA a;
CREATE TYPE a.aa_mood AS ENUM ('sad', 'ok');
CREATE TABLE a.t (id int);
CREATE TYPE a.aaa_wraps AS (t a.t);
CREATE CAST (text AS a.aa_mood) WITH INOUT AS ASSIGNMENT;
CREATE TABLE a.u (m a.aa_mood DEFAULT 'ok'::text);
CREATE TABLE a.v (id int);
INSERT INTO a.u DEFAULT VALUES;
"""
TWO_PARENTS = """
CREATE TABLE base_row (id int);
CREATE TYPE wraps AS (r base_row);
CREATE TABLE p1 (id serial, v text);
CREATE TABLE p2 (id serial);
CREATE TABLE c (w wraps) INHERITS (p1);
ALTER TABLE c INHERIT p2;
CREATE TABLE many_1 (id int);
INSERT INTO c (v) VALUES ('child');
"""
TYPE_NAMES = """
CREATE TABLE "_a" (id int);
CREATE TABLE a (id int);
CREATE TABLE b (id int);
DO $$ BEGIN FOR i IN 0..35 LOOP EXECUTE format('CREATE TABLE %I (id int)',
    repeat('x', 62) || substr('0123456789abcdefghijklmnopqrstuvwxyz', i + 1, 1)); END LOOP; END $$;
"""

FAMILIES: dict[str, tuple[str, str]] = {
    "cast_after_a_table": ("", CAST_AFTER_A_TABLE),
    "two_parents": ("", TWO_PARENTS),
    "type_names": ("", TYPE_NAMES),
    "pre_data": ("", PRE_DATA),
    "partitioning": ("", PARTITIONING),
    "keys": ("", KEYS),
    "matviews": ("", MATVIEWS),
    "inheritance": ("", INHERITANCE),
    "generated": ("", GENERATED),
    "replication": ("", REPLICATION),
    "security": ("", SECURITY),
    "extensions": ("", EXTENSIONS),
    "names": ("", NAMES),
    "data": ("", DATA),
    "latin1": ("ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'", LATIN1_NAMES + ODD_BYTES),
    "sql_ascii": ("ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'", DATA + ODD_BYTES),
}


@pytest.fixture(scope="module")
def role() -> Iterator[str]:
    """A role of the tests' own, for grants and owners; dropped with what it owns."""
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(ROLE)))
    try:
        yield ROLE
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(ROLE)))


def _create(name: str, options: str) -> str:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 {}").format(
                sql.Identifier(name),
                sql.SQL(options),  # type: ignore[arg-type]
            )
        )
    return pg_url(name)


def _baseline(source: str, target: str, options: str, dump: Path) -> PgSnapshot:
    """``pg_dump -Fc`` of ``source`` restored with ``pg_restore`` into a new ``target``."""
    subprocess.run([f"{PG_BIN}/pg_dump", "-Fc", f"--file={dump}", source], check=True)
    url = _create(target, options)
    subprocess.run(
        [f"{PG_BIN}/pg_restore", "--exit-on-error", f"--dbname={url}", str(dump)],
        check=True,
        capture_output=True,
    )
    return pg_snapshot(url)


@pytest.fixture(params=["one session", "parallel"])
def pre_data(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[list[PreDataPlan | None]]:
    """How the restores' pre-data runs: in one session, as pg_restore runs it, or (however
    few the tables) by a parallel plan, which must not have to start over. Yields the plans."""
    plans: list[PreDataPlan | None] = []
    if request.param == "parallel":
        monkeypatch.setattr(predata, "MIN_PARALLEL_ENTRIES", 0)

        def recorded(*args: Any) -> PreDataPlan | None:
            plans.append(predata.plan_pre_data(*args))
            return plans[-1]

        monkeypatch.setattr(load, "plan_pre_data", recorded)
    yield plans
    started_over = [r for r in caplog.get_records("call") if "starting over" in r.getMessage()]
    assert not started_over
    if request.param == "parallel":
        assert plans, "the restore did not plan its pre-data"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_restore_is_as_faithful_as_pg_restore(
    services: Services,
    role: str,
    tmp_path: Path,
    family: str,
    pre_data: list[PreDataPlan | None],
) -> None:
    options, script = FAMILIES[family]
    tag = uuid.uuid4().hex[:8]
    names = [f"wrt_fid_{family}_{tag}", f"wrt_fid_{family}_{tag}_w", f"wrt_fid_{family}_{tag}_b"]
    try:
        source = _create(names[0], options)
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("SET client_encoding = 'UTF8'")  # the scripts' own
            conn.execute(script)  # type: ignore[arg-type]
            database = sql.Identifier(names[0])
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS 'fidelity'").format(database))
            conn.execute(sql.SQL("ALTER DATABASE {} SET work_mem = '3MB'").format(database))
        original = pg_snapshot(source)
        services.backups.create(url=source, name="it", jobs=2)
        services.backups.restore("it", new_db=names[1], url=source, jobs=2)
        restored = pg_snapshot(pg_url(names[1]))
        baseline = _baseline(source, names[2], options, tmp_path / "baseline.pgdump")

        for snapshot in (original, baseline):
            assert restored.schema == snapshot.schema
            assert restored.routed_tables() == snapshot.routed_tables()
            assert restored.populated() == snapshot.populated()
            assert restored.sequences == snapshot.sequences
            assert restored.large_objects == snapshot.large_objects
        # Refreshed, as pg_restore refreshes them: a stale one's rows are today's.
        assert restored.matviews == baseline.matviews
        assert restored.database == original.database
    finally:
        for name in names:
            drop_pg_database(name)
