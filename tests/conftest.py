"""Shared fixtures: the real PostgreSQL server, per-test databases, settings over temp dirs.

PostgreSQL for tests is the server at WARROOM_TEST_PG_URL (default: the machine's own, trust
auth); each test creates and drops its own database.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from warroom.config import Settings
from warroom.services import Services, build_services
from warroom.storage.local import LocalStorage

PG_URL = os.environ.get("WARROOM_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def pytest_configure(config: pytest.Config) -> None:
    """A run started in the background of a shell without job control (``nohup ./test.sh &``)
    inherits SIGINT ignored, and would pass it on to every program the tests start: the Ctrl-C
    tests would hang or see nothing. Give the run Python's own handler, as a terminal would
    (a handled signal is reset to its default in the programs it starts)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pg_url(dbname: str) -> str:
    return PG_URL.rsplit("/", 1)[0] + "/" + dbname


def create_pg_database(prefix: str = "wrt") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_pg_database(name: str) -> None:
    """Drop ``name`` if it exists, its subscriptions (which DROP DATABASE refuses) first."""
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        subscribed = conn.execute(
            "SELECT s.subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid"
            " WHERE d.datname = %s",
            (name,),
        ).fetchall()
        if subscribed:
            with psycopg.connect(pg_url(name), autocommit=True) as inside:
                for (subscription,) in subscribed:
                    for statement in (
                        "ALTER SUBSCRIPTION {} DISABLE",
                        "ALTER SUBSCRIPTION {} SET (slot_name = NONE)",
                        "DROP SUBSCRIPTION {}",
                    ):
                        inside.execute(sql.SQL(statement).format(sql.Identifier(subscription)))
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def pg_database_exists(name: str) -> bool:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        return bool(
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        )


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A fresh, empty PostgreSQL database; yields its URL; dropped afterwards."""
    name = create_pg_database()
    try:
        yield pg_url(name)
    finally:
        drop_pg_database(name)


@pytest.fixture
def pg_names() -> Iterator[list[str]]:
    """Names of databases a test creates (restore targets); all dropped afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        drop_pg_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The catalog on each dialect it supports."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/catalog.db"
        return
    name = create_pg_database("wrt_catalog")
    try:
        yield pg_url(name)
    finally:
        drop_pg_database(name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        backup_dir=tmp_path / "backups",
        checkpoint_dir=tmp_path / "checkpoints",
        catalog_url=f"sqlite:///{tmp_path}/catalog.db",
    )


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    with build_services(settings) as built:
        yield built


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "repo")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own settings or warroom.toml."""
    for variable in list(os.environ):
        if variable.startswith("WARROOM_") and variable != "WARROOM_TEST_PG_URL":
            monkeypatch.delenv(variable)
    for variable in (
        "CHECKPOINT_DIR",
        "BACKUP_DIR",
        "DATABASE_URL",
        "CHECKPOINT_RETENTION_DAYS",
        "ENABLE_AUTO_CHECKPOINTS",
        "DATABASE_CHECKPOINT_SCHEDULE",
        "PORT",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[object]:
    """moto's S3 server on a loopback port, for the whole session (tests/s3server.py)."""
    from tests.s3server import moto_server

    with moto_server() as server:
        yield server


@pytest.fixture(scope="session")
def password_cluster() -> Iterator[object]:
    """One throwaway cluster with password (scram) authentication for the whole session."""
    from tests.pgcluster import throwaway_cluster

    with throwaway_cluster() as cluster:
        yield cluster
