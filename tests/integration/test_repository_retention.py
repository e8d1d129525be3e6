"""Retention per repository: a local primary and two S3 replicas (moto's server on loopback),
each with its own rule in WARROOM_REPLICAS; cleanup applies each rule to that repository's
copies with the same protections, a backup kept only by a replica stays listed and restorable,
repo sync does not copy back what a repository's rule deleted, and a bad rule is refused."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from tests.s3server import S3Server
from warroom.app.listing import checkpoint_listing
from warroom.config import Settings
from warroom.errors import ConfigurationError
from warroom.repository.replication import sync
from warroom.services import build_services


@pytest.fixture
def aws(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    return s3_server


def _plans(report: dict[str, object]) -> dict[str, tuple[list[str], list[str]]]:
    """Per repository location: the names it keeps and deletes."""
    plans = {}
    for plan in report["repositories"]:  # type: ignore[attr-defined]
        sources = plan["database"]["sources"]
        keep = sorted(e["name"] for s in sources for e in s["keep"])
        delete = sorted(e["name"] for s in sources for e in s["delete"])
        plans[plan["location"]] = (keep, delete)
    return plans


def test_each_repository_keeps_what_its_own_rule_says(tmp_path: Path, aws: S3Server) -> None:
    source = tmp_path / "app.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(20)])
    primary = str(tmp_path / "backups")
    long_, strict = f"s3://{aws.new_bucket()}/long", f"s3://{aws.new_bucket()}/strict"
    settings = Settings(
        backup_dir=primary,
        checkpoint_dir=tmp_path / "checkpoints",
        catalog_url=f"sqlite:///{tmp_path}/catalog.db",
        retention_keep_last=1,  # BACKUP_DIR: the newest only, after 7 days
        replicas=f"{long_}?keep_days=30, {strict}?keep_days=0&keep_last=0",
    )
    url = f"sqlite:///{source}"
    with build_services(settings) as services:
        for name in ("b1", "b2", "b3"):
            services.backups.create(url=url, name=name)
        assert services.backups.verify("b1", restore_test=True).status == "restore-tested"
        later = services.cleanup.clock() + timedelta(days=10)
        services.cleanup.clock = lambda: later

        planned = services.cleanup.run(dry_run=True)
        # b1: the newest restore-tested, b3: the newest intact; protected on every repository.
        assert _plans(dict(planned)) == {
            primary: (["b1", "b3"], ["b2"]),
            long_: (["b1", "b2", "b3"], []),
            strict: (["b1", "b3"], ["b2"]),
        }
        assert planned["database"] == planned["repositories"][0]["database"]
        assert all(
            services.backups.names_on(c) == {"b1", "b2", "b3"} for c in services.repository.copies()
        )

        services.cleanup.run()
        held = [services.backups.names_on(copy) for copy in services.repository.copies()]
        assert held == [{"b1", "b3"}, {"b1", "b2", "b3"}, {"b1", "b3"}]
        rows = {
            row["name"]: row["repositories"]
            for row in checkpoint_listing(services, later, type_="database")["checkpoints"]
        }
        assert rows["b2"] == {primary: "missing", long_: "present", strict: "missing"}
        report = services.backups.restore("b2", new_db="b2.db", url=url)
        assert report.details["repository"] == long_  # the only copy left
        with sqlite3.connect(tmp_path / "b2.db") as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (20,)

        # repo sync copies what is missing, but not what a repository's own rule deleted.
        unwanted = services.cleanup.unwanted()
        assert unwanted[primary] == {"b2"} and unwanted[long_] == set()
        sync(services.repository.storage.copies(), skip=unwanted)
        held = [services.backups.names_on(copy) for copy in services.repository.copies()]
        assert held == [{"b1", "b3"}, {"b1", "b2", "b3"}, {"b1", "b3"}]

        # Past the long replica's 30 days b2 goes from its last copy, and from the catalog.
        much_later = later + timedelta(days=30)
        services.cleanup.clock = lambda: much_later
        services.cleanup.run()
        assert [r.name for r in services.backups.list_backups()] == ["b1", "b3"]
        held = [services.backups.names_on(copy) for copy in services.repository.copies()]
        assert held == [{"b1", "b3"}] * 3


@pytest.mark.parametrize(
    ("replicas", "says"),
    [
        ("/r?keep=3", "unknown setting 'keep'"),
        ("/r?keep_days=-1", "keep_days of /r must be a whole number"),
        ("/r?keep_last=many", "keep_last of /r must be a whole number"),
    ],
)
def test_a_bad_replica_rule_is_refused_saying_what_to_fix(
    tmp_path: Path, replicas: str, says: str
) -> None:
    with pytest.raises(ConfigurationError, match=says) as caught:
        Settings(backup_dir=tmp_path / "b", checkpoint_dir=tmp_path / "c", replicas=replicas)
    assert caught.value.exit_code == 2
