"""What "the restored database equals the original" means in the tests, table by table."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

PG_BIN = "/usr/lib/postgresql/15/bin"


@dataclass
class PgSnapshot:
    schema: str
    tables: dict[str, tuple[int, str]]
    sequences: dict[str, tuple[int, bool]]
    large_objects: list[tuple[int, str]]


def _schema(url: str) -> str:
    out = subprocess.run(
        [f"{PG_BIN}/pg_dump", "--schema-only", "--no-owner", "--encoding=UTF8", f"--dbname={url}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # pg_dump >= 15.14 writes a random \restrict key; everything else must be equal.
    return "\n".join(line for line in out.splitlines() if not re.match(r"\\(un)?restrict", line))


def pg_snapshot(url: str) -> PgSnapshot:
    """Schema (pg_dump --schema-only), and an ordered hash and count of every table's rows."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        hashes: dict[str, tuple[int, str]] = {}
        for schema, table in tables:
            ident = sql.Identifier(schema, table)
            query = sql.SQL(
                "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '')"
                " FROM {} t"
            ).format(ident)
            count, digest = conn.execute(query).fetchone()  # type: ignore[misc]
            hashes[f"{schema}.{table}"] = (count, digest)
        sequences: dict[str, tuple[int, bool]] = {}
        for schema, name in conn.execute(
            "SELECT schemaname, sequencename FROM pg_sequences ORDER BY 1, 2"
        ).fetchall():
            row: Any = conn.execute(
                sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(schema, name))
            ).fetchone()
            sequences[f"{schema}.{name}"] = (row[0], row[1])
        large_objects = conn.execute(
            "SELECT loid, md5(string_agg(data, '' ORDER BY pageno)) "
            "FROM pg_largeobject GROUP BY loid ORDER BY loid"
        ).fetchall()
    return PgSnapshot(_schema(url), hashes, sequences, [tuple(r) for r in large_objects])


RICH_SCHEMA = r"""
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS citext;
CREATE SCHEMA billing;
CREATE TYPE mood AS ENUM ('ok', 'sad', 'happy');
CREATE TABLE customers (
    id bigserial PRIMARY KEY,
    email citext UNIQUE NOT NULL,
    name text NOT NULL CHECK (length(name) > 0),
    mood mood DEFAULT 'ok',
    profile jsonb,
    avatar bytea,
    created timestamptz NOT NULL DEFAULT now(),
    name_upper text GENERATED ALWAYS AS (upper(name)) STORED
);
CREATE TABLE billing.invoices (
    id serial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    amount numeric(12, 2) NOT NULL,
    note text,
    token text DEFAULT encode(gen_random_bytes(8), 'hex')
);
CREATE INDEX invoices_customer_idx ON billing.invoices (customer_id);
CREATE INDEX customers_profile_idx ON customers USING gin (profile);
CREATE TABLE events (id int, at date NOT NULL, payload text) PARTITION BY RANGE (at);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE events_2027 PARTITION OF events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
CREATE TABLE "Odd ""Name"" 1" ("Col" int);
CREATE SEQUENCE ticket_seq START 100;
CREATE TABLE audit (id int PRIMARY KEY, what text);
CREATE TABLE refs (target regclass, kind regtype, doc xml);  -- names must come back qualified
CREATE FUNCTION total_for(bigint) RETURNS numeric LANGUAGE sql STABLE
    AS $$ SELECT coalesce(sum(amount), 0) FROM billing.invoices WHERE customer_id = $1 $$;
CREATE FUNCTION audit_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit VALUES (NEW.id, 'invoice'); RETURN NEW; END $$;
CREATE TRIGGER invoices_audit AFTER INSERT ON billing.invoices
    FOR EACH ROW EXECUTE FUNCTION audit_insert();
CREATE VIEW customer_totals AS SELECT id, email, total_for(id) AS total FROM customers;
CREATE MATERIALIZED VIEW mood_counts AS SELECT mood, count(*) FROM customers GROUP BY mood;
COMMENT ON TABLE customers IS 'people who pay';
"""

RICH_DATA = r"""
INSERT INTO customers (email, name, mood, profile, avatar)
SELECT 'user' || g || '@Example.com', 'name ' || g || E'\n\ttab',
       (ARRAY['ok','sad','happy'])[1 + g % 3]::mood,
       jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g)),
       CASE WHEN g % 5 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END
FROM generate_series(1, 300) g;
INSERT INTO billing.invoices (customer_id, amount, note)
SELECT 1 + g % 300, g * 1.25, CASE WHEN g % 7 = 0 THEN NULL ELSE 'note ''quoted'' \ ' || g END
FROM generate_series(1, 900) g;
INSERT INTO events SELECT g, DATE '2026-03-01' + g, repeat('x', g % 50)
FROM generate_series(1, 600) g;
INSERT INTO "Odd ""Name"" 1" VALUES (1), (NULL);
INSERT INTO refs VALUES ('billing.invoices', 'mood', 'a<b/>fragment'),
                        ('customers', 'billing.invoices', NULL);
SELECT setval('ticket_seq', 4242);
SELECT lo_from_bytea(0, 'a large object');
REFRESH MATERIALIZED VIEW mood_counts;
"""


def fill_rich_database(url: str) -> None:
    """Every kind of object a restore must bring back, with awkward data."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RICH_SCHEMA)
        conn.execute(RICH_DATA)
