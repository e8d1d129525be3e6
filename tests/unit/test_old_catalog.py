"""A catalog left at the old default location (./data/catalog.db) is moved to the new one
($CHECKPOINT_DIR/catalog.db), or used where it is with a notice; never silently shadowed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from warroom.auth import TokenStore
from warroom.catalog.legacy import OLD_DEFAULT, adopt_old_catalog
from warroom.config import Settings
from warroom.services import build_services


def _old_catalog_with_a_token() -> None:
    with build_services(Settings(catalog_url=f"sqlite:///{OLD_DEFAULT}")) as services:
        TokenStore(services.catalog).create("admin-1", "admin")


def test_an_old_catalog_is_moved_and_keeps_its_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _old_catalog_with_a_token()
    with build_services(Settings.load()) as services:
        assert [t.name for t in TokenStore(services.catalog).list()] == ["admin-1"]
        assert services.catalog.location == str(tmp_path / "data/checkpoints/catalog.db")
    assert not OLD_DEFAULT.exists()
    assert "moved the catalog from its old location" in caplog.text
    assert str(tmp_path / "data/checkpoints/catalog.db") in caplog.text


def test_an_old_catalog_in_use_is_used_where_it_is(tmp_path: Path) -> None:
    _old_catalog_with_a_token()
    new = tmp_path / "volume" / "catalog.db"
    with sqlite3.connect(OLD_DEFAULT) as conn:  # an open WAL-mode catalog keeps its -wal file
        conn.execute("SELECT count(*) FROM warroom_api_tokens")
        used, notice = adopt_old_catalog(new)
    assert used == OLD_DEFAULT and not new.exists()
    assert notice is not None and "not moved" in notice and "WARROOM_CATALOG_URL" in notice


def test_both_catalogs_existing_is_said(tmp_path: Path) -> None:
    _old_catalog_with_a_token()
    new = tmp_path / "volume" / "catalog.db"
    new.parent.mkdir()
    new.write_bytes(b"")
    used, notice = adopt_old_catalog(new)
    assert used == new and notice is not None and "is not used" in notice


def test_no_old_catalog_no_notice(tmp_path: Path) -> None:
    assert adopt_old_catalog(tmp_path / "catalog.db") == (tmp_path / "catalog.db", None)


def test_an_explicit_catalog_url_is_left_alone(tmp_path: Path) -> None:
    _old_catalog_with_a_token()
    explicit = f"sqlite:///{tmp_path}/elsewhere.db"
    with build_services(Settings(catalog_url=explicit)) as services:
        assert services.catalog.location == str(tmp_path / "elsewhere.db")
    assert OLD_DEFAULT.exists()
