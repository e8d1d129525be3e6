"""What "the restored database equals the original" means in the tests, table by table."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

PG_BIN = "/usr/lib/postgresql/15/bin"


@dataclass
class PgSnapshot:
    """A database as its users see it. ``schema`` is pg_dump's schema, one entry per item
    (``-- Name: ...`` header and statements), in pg_dump's order."""

    schema: list[str]
    tables: dict[str, tuple[int, str]]
    sequences: dict[str, tuple[int, bool]]
    large_objects: list[tuple[Any, ...]]
    matviews: dict[str, tuple[bool, int, str] | tuple[bool]]
    database: dict[str, Any]
    # Partitions under a hash partitioning of a key of user-defined type (an enum's hash is
    # its OID): a restore routes their rows again, so only their tree's root compares.
    rerouted: set[str]

    def routed_tables(self) -> dict[str, tuple[int, str]]:
        """``tables`` but the rerouted partitions."""
        return {name: rows for name, rows in self.tables.items() if name not in self.rerouted}

    def populated(self) -> dict[str, bool]:
        """Each materialized view's populated state."""
        return {name: state[0] for name, state in self.matviews.items()}


def _schema(url: str) -> list[str]:
    out = subprocess.run(
        [f"{PG_BIN}/pg_dump", "--schema-only", "--encoding=UTF8", f"--dbname={url}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # pg_dump >= 15.14 writes a random \restrict key; everything else must be equal.
    text = "\n".join(line for line in out.splitlines() if not re.match(r"\\(un)?restrict", line))
    return [entry.strip() for entry in re.split(r"^--\n(?=-- Name: )", text, flags=re.M)]


_REROUTED = """
SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relispartition AND EXISTS (
    SELECT 1 FROM pg_partition_ancestors(c.oid) a
    JOIN pg_partitioned_table p ON p.partrelid = a.relid AND p.partstrat = 'h'
    JOIN pg_attribute att ON att.attrelid = p.partrelid AND att.attnum = ANY (p.partattrs)
    JOIN pg_type t ON t.oid = att.atttypid
    WHERE t.typnamespace <> 'pg_catalog'::regnamespace)
"""
_ROWS = "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM {} t"
_DATABASE = """
SELECT pg_encoding_to_char(d.encoding) AS encoding, d.datcollate, d.datctype, d.datconnlimit,
       shobj_description(d.oid, 'pg_database') AS comment, pg_get_userbyid(d.datdba) AS owner,
       ARRAY(SELECT a::text FROM unnest(d.datacl) a ORDER BY 1) AS acl,
       ARRAY(SELECT coalesce(pg_get_userbyid(s.setrole), '') || ' ' || s.setconfig::text
             FROM pg_db_role_setting s WHERE s.setdatabase = d.oid ORDER BY 1) AS settings
FROM pg_database d WHERE d.datname = current_database()
"""


def _rows(conn: Any, schema: str, name: str) -> tuple[int, str]:
    query = sql.SQL(_ROWS).format(sql.Identifier(schema, name))  # type: ignore[arg-type]
    count, digest = conn.execute(query).fetchone()
    return count, digest


def pg_snapshot(url: str) -> PgSnapshot:
    """Schema (pg_dump --schema-only), an ordered hash and count of every table's rows, and
    of every populated materialized view's; sequences, large objects, database properties."""
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.info.parameter_status("client_encoding") == "SQL_ASCII":
            conn.execute("SET client_encoding = 'UTF8'")
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        hashes = {f"{schema}.{table}": _rows(conn, schema, table) for schema, table in tables}
        matviews: dict[str, tuple[bool, int, str] | tuple[bool]] = {
            f"{schema}.{name}": (True, *_rows(conn, schema, name)) if populated else (False,)
            for schema, name, populated in conn.execute(
                "SELECT schemaname, matviewname, ispopulated FROM pg_matviews ORDER BY 1, 2"
            ).fetchall()
        }
        database = conn.cursor(row_factory=dict_row).execute(_DATABASE).fetchone()
        rerouted = {name for (name,) in conn.execute(_REROUTED)}
        sequences: dict[str, tuple[int, bool]] = {}
        for schema, name in conn.execute(
            "SELECT schemaname, sequencename FROM pg_sequences ORDER BY 1, 2"
        ).fetchall():
            row: Any = conn.execute(
                sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(schema, name))
            ).fetchone()
            sequences[f"{schema}.{name}"] = (row[0], row[1])
        large_objects = conn.execute(
            "SELECT m.oid, pg_get_userbyid(m.lomowner), m.lomacl::text,"
            " obj_description(m.oid, 'pg_largeobject'),"
            " (SELECT md5(string_agg(data, '' ORDER BY pageno)) FROM pg_largeobject"
            "  WHERE loid = m.oid) FROM pg_largeobject_metadata m ORDER BY 1"
        ).fetchall()
    return PgSnapshot(
        _schema(url),
        hashes,
        sequences,
        [tuple(r) for r in large_objects],
        matviews,
        dict(database or {}),
        rerouted,
    )


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
