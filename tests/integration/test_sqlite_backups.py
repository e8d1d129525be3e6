"""Database checkpoints of SQLite databases, through the same service as PostgreSQL's."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from warroom.errors import (
    ConflictError,
    DatabaseUnreachableError,
    IncompatibleBackupError,
    IntegrityError,
)
from warroom.services import Services


def _make_app_db(path: Path, rows: int = 2000) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(
        """
        CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL, blob BLOB);
        CREATE TABLE orders (id INTEGER PRIMARY KEY,
            customer_id INTEGER REFERENCES customers(id), total REAL);
        CREATE INDEX orders_customer ON orders (customer_id);
        CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
        CREATE TRIGGER stamp AFTER INSERT ON orders BEGIN SELECT 1; END;
        """
    )
    conn.executemany(
        "INSERT INTO customers (email, blob) VALUES (?, ?)",
        [(f"u{i}@x.org", bytes([i % 256]) * 10) for i in range(rows)],
    )
    conn.executemany(
        "INSERT INTO orders (customer_id, total) VALUES (?, ?)",
        [(1 + i % rows, i * 0.5) for i in range(rows * 2)],
    )
    conn.commit()
    conn.close()


def _dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


def test_round_trip(services: Services, tmp_path: Path) -> None:
    source = tmp_path / "app.db"
    _make_app_db(source)
    writer = sqlite3.connect(source)  # an open connection with uncheckpointed WAL frames
    writer.execute("INSERT INTO customers (email) VALUES ('late@x.org')")
    writer.commit()
    manifest = services.backups.create(url=f"sqlite:///{source}", name="lite")
    assert manifest.engine == "sqlite" and manifest.tables == {"customers": 2001, "orders": 4000}
    assert manifest.size_stored < manifest.size_original

    report = services.backups.restore("lite", new_db="copy.db", url=f"sqlite:///{source}")
    assert report.tables_checked == 2
    assert _dump(tmp_path / "copy.db") == _dump(source)
    writer.close()


def test_verify_restore_test_and_damage(services: Services, tmp_path: Path) -> None:
    source = tmp_path / "app.db"
    _make_app_db(source)
    services.backups.create(url=f"sqlite:///{source}", name="lite")
    assert services.backups.verify("lite", restore_test=True).restore_tested

    part = services.settings.backup_dir / "database" / "lite" / "database"
    data = bytearray(part.read_bytes())
    data[100] ^= 0x01
    part.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="database"):
        services.backups.verify("lite")
    before = source.read_bytes()
    with pytest.raises(IntegrityError):
        services.backups.restore("lite", target_url=f"sqlite:///{source}", confirm=True)
    assert source.read_bytes() == before


def test_restore_over_existing_file_with_safety_backup(services: Services, tmp_path: Path) -> None:
    source = tmp_path / "app.db"
    _make_app_db(source, rows=10)
    services.backups.create(url=f"sqlite:///{source}", name="good")
    with closing(sqlite3.connect(source)) as conn, conn:
        conn.execute("DELETE FROM orders")
    report = services.backups.restore("good", target_url=f"sqlite:///{source}", confirm=True)
    with closing(sqlite3.connect(source)) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (20,)
    assert report.safety_backup is not None
    assert services.backups.manifest(report.safety_backup).tables["orders"] == 0
    left = sorted(p.name for p in tmp_path.iterdir() if "app.db" in p.name or "warroom" in p.name)
    assert left == ["app.db"]


def test_refusals(services: Services, tmp_path: Path, pg_db: str) -> None:
    source = tmp_path / "app.db"
    _make_app_db(source, rows=5)
    services.backups.create(url=f"sqlite:///{source}", name="lite")
    with pytest.raises(IncompatibleBackupError, match="sqlite backup"):
        services.backups.restore("lite", target_url=pg_db, confirm=True)
    with pytest.raises(ConflictError, match="already exists"):
        services.backups.restore("lite", new_db="app.db", url=f"sqlite:///{source}")
    with pytest.raises(DatabaseUnreachableError, match="does not exist"):
        services.backups.create(url=f"sqlite:///{tmp_path}/missing.db")
