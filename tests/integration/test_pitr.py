"""Point-in-time recovery against a throwaway cluster (never the machine's own server):
archiving through ``warroom wal push``, a physical base backup, and recovery to a moment."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from tests.e2e.cli import cli_env, run_warroom
from tests.pgcluster import (
    Cluster,
    archiver_state,
    recovered_server,
    switch_wal,
    throwaway_cluster,
    wait_for,
    warroom_for_postgres,
)
from warroom.config import Settings
from warroom.database.pitr import RecoveryTarget
from warroom.errors import ConfigurationError, InputError
from warroom.services import Services, build_services
from warroom.status import system_status

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo() -> Iterator[Path]:
    """A repository the cluster's postgres user can write (pytest's tmp dirs are root-only),
    reached through a symlink that the test can point at an unreachable place."""
    base = Path(tempfile.mkdtemp(prefix="warroom-pitr-"))
    shutil.chown(base, "postgres", "postgres")
    (base / "real").mkdir()
    shutil.chown(base / "real", "postgres", "postgres")
    (base / "not-a-directory").write_text("")
    (base / "repo").symlink_to(base / "not-a-directory")  # unreachable at first
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_point_in_time_recovery_end_to_end(repo: Path) -> None:
    runner = warroom_for_postgres(repo)
    push = f"BACKUP_DIR={repo / 'repo'} {runner} wal push %p"
    conf = {"wal_level": "replica", "archive_mode": "on", "archive_command": push}
    with throwaway_cluster(auth="trust", conf=conf) as cluster:
        url = cluster.url()
        settings = Settings(
            backup_dir=repo / "repo",
            checkpoint_dir=repo / "cp",
            catalog_url=f"sqlite:///{repo}/catalog.db",
            database_url=url,
            wal_command=runner,
        )

        # The repository is unreachable: PostgreSQL keeps the segment and retries.
        first = switch_wal(cluster)
        wait_for(lambda: archiver_state(cluster)[2] > 0, what="a failed archive attempt")
        with build_services(settings) as services:
            status = system_status(services, services.backups.clock())
            assert any("WAL archiving is failing" in p for p in status["problems"])
            from prometheus_client import generate_latest

            from warroom.api.metrics import build_registry

            metrics = generate_latest(build_registry(services)).decode()
            assert "warroom_wal_archiving_failing 1.0" in metrics
        (repo / "repo").unlink()
        (repo / "repo").symlink_to(repo / "real")
        wait_for(lambda: (archiver_state(cluster)[1] or "") >= first, what="archiving to catch up")

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE orders (id serial PRIMARY KEY, "
                "at timestamptz NOT NULL DEFAULT clock_timestamp(), v text)"
            )
            conn.execute("CREATE TABLE keep_me (id int)")
            conn.execute("INSERT INTO keep_me SELECT generate_series(1, 50)")
            conn.execute("INSERT INTO orders (v) SELECT 'before-base' FROM generate_series(1, 100)")

        with build_services(settings) as services:
            base = services.backups.create(url=url, physical=True)
            assert base.kind == "physical" and base.database["start_wal"].startswith("0000")
            assert services.backups.verify(base.name).parts_checked == 1

            with psycopg.connect(url, autocommit=True) as conn:
                for batch in range(3):  # rows across several WAL segments
                    conn.execute(
                        "INSERT INTO orders (v) SELECT %s FROM generate_series(1, 100)",
                        (f"after-base-{batch}",),
                    )
                    conn.execute("SELECT pg_switch_wal()")
                time.sleep(0.3)
                target_row = conn.execute("SELECT clock_timestamp()").fetchone()
                assert target_row is not None
                target = target_row[0]
                point = services.pitr.create_restore_point("release-42", url)
                assert point["lsn"]
                time.sleep(0.3)
                conn.execute("INSERT INTO orders (v) SELECT 'too-late' FROM generate_series(1, 10)")
                conn.execute("DROP TABLE keep_me")
                expected = conn.execute(
                    "SELECT count(*) FROM orders WHERE at <= %s", (target,)
                ).fetchone()
            last = switch_wal(cluster)
            wait_for(lambda: (archiver_state(cluster)[1] or "") >= last, what="the last segment")

            window = services.pitr.window()
            assert window is not None and window["archived_segments"] >= 4
            with pytest.raises(InputError, match="recoverable window"):
                services.pitr.restore(
                    RecoveryTarget(time=base.created_at - timedelta(hours=1)), repo / "too-early"
                )
            with pytest.raises(InputError, match="recoverable window"):
                services.pitr.restore(
                    RecoveryTarget(time=target + timedelta(days=1)), repo / "too-late"
                )

            at_target = RecoveryTarget(time=target)
            with recovered_server(services.pitr, at_target, repo / "recovered") as (report, url):
                assert report["promoted"] and report["base_backup"] == base.name
                with psycopg.connect(url, autocommit=True) as conn:
                    assert conn.execute("SELECT count(*) FROM orders").fetchone() == expected
                    assert conn.execute(
                        "SELECT count(*) FROM orders WHERE v = 'too-late'"
                    ).fetchone() == (0,)
                    assert conn.execute("SELECT count(*) FROM keep_me").fetchone() == (50,)
                    assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)

            assert not list((repo / "real" / "wal").glob("history/*")), "a recovered copy archived"
            for recovery, rows, keep_me in (
                (RecoveryTarget(name="release-42"), expected, True),
                (RecoveryTarget(), (expected[0] + 10,), False),  # latest
            ):
                data_dir = repo / f"recovered-{rows[0]}"
                with recovered_server(services.pitr, recovery, data_dir) as (_, url):
                    with psycopg.connect(url, autocommit=True) as conn:
                        assert conn.execute("SELECT count(*) FROM orders").fetchone() == rows
                        present = conn.execute(
                            "SELECT to_regclass('keep_me') IS NOT NULL"
                        ).fetchone()
                        log = (data_dir / "recovery.log").read_text()[-3000:]
                        assert present == (keep_me,), log

            # Retention keeps the WAL every kept base backup needs, and removes the rest.
            start_wal = base.database["start_wal"]
            removed = services.cleanup.run(days=0)["wal_removed"]
            assert removed and all(name[8:] < start_wal[8:] for name in removed)
            assert all(s.name[8:] >= start_wal[8:] for s in services.wal.segments())

            # A damaged archived segment is refused at fetch (exit 255), never replayed.
            segment = next((repo / "real" / "wal").glob("0000000*/0000*[0-9A-F]"))
            data = bytearray(segment.read_bytes())
            data[len(data) // 2] ^= 0xFF
            segment.write_bytes(bytes(data))
            fetched = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "warroom",
                    "wal",
                    "fetch",
                    segment.name,
                    str(repo / "fetched"),
                ],
                env={"BACKUP_DIR": str(repo / "real"), "PATH": "/usr/bin:/bin"},
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            assert fetched.returncode == 255, fetched.stderr  # fatal: PostgreSQL stops recovery
            assert "damaged" in fetched.stderr or "corrupt" in fetched.stderr
            assert not (repo / "fetched").exists()


def test_wal_push_is_idempotent_and_refuses_different_content(tmp_path: Path) -> None:
    from warroom.errors import IntegrityError
    from warroom.repository import Repository
    from warroom.storage.local import LocalStorage
    from warroom.wal import WalArchive

    archive = WalArchive(Repository(LocalStorage(tmp_path / "repo")))
    segment = tmp_path / "000000010000000000000007"
    segment.write_bytes(b"\x01" * 1000)
    assert archive.push(segment) == "archived"
    # The record's checksum is the segment's, hashed once while it was compressed.
    (recorded,) = archive.segments()
    assert (recorded.sha256, recorded.size) == (hashlib.sha256(b"\x01" * 1000).hexdigest(), 1000)
    assert archive.push(segment) == "already archived"
    segment.write_bytes(b"\x02" * 1000)
    with pytest.raises(IntegrityError, match="different content"):
        archive.push(segment)
    with pytest.raises(InputError, match="not a WAL file name"):
        archive.push(tmp_path / "../etc/passwd")


@pytest.mark.parametrize("content", ["same", "different"])
def test_wal_push_checks_a_record_found_while_it_compresses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    """The record is looked up on another thread while the segment is compressed: a record
    found only then still decides before anything is written (already archived, or refused)
    and the archived object is left as it was."""
    import threading

    from warroom.errors import IntegrityError
    from warroom.repository import Repository
    from warroom.storage.local import LocalStorage
    from warroom.wal import WalArchive

    storage = LocalStorage(tmp_path / "repo")
    archive = WalArchive(Repository(storage))
    segment = tmp_path / "000000010000000000000007"
    segment.write_bytes(os.urandom(3 << 20))
    assert archive.push(segment) == "archived"
    stored = b"".join(storage.get("wal/00000001/000000010000000000000007"))
    if content == "different":
        segment.write_bytes(os.urandom(3 << 20))

    compressing, looked_up = threading.Event(), WalArchive._recorded
    encode = archive.repository.write

    def write(*args: object, **kwargs: object) -> object:
        compressing.set()
        return encode(*args, **kwargs)  # type: ignore[arg-type]

    def late(self: WalArchive, name: str, repository: object = None) -> object:
        assert compressing.wait(10), "the record was looked up before the compression started"
        return looked_up(self, name)

    monkeypatch.setattr(archive.repository, "write", write)
    monkeypatch.setattr(WalArchive, "_recorded", late)
    if content == "same":
        assert archive.push(segment) == "already archived"
    else:
        with pytest.raises(IntegrityError, match="different content"):
            archive.push(segment)
    assert b"".join(storage.get("wal/00000001/000000010000000000000007")) == stored
    left = sorted(path.name for path in (tmp_path / "repo" / "wal" / "00000001").iterdir())
    assert left == ["000000010000000000000007", "000000010000000000000007.json"]  # no temp


def test_services_import(services: Services) -> None:
    assert services.pitr.window() is None


def test_setup_pitr_apply_never_lowers_wal_level(repo: Path) -> None:
    with throwaway_cluster(auth="trust", conf={"wal_level": "logical"}) as cluster:
        settings = Settings(
            backup_dir=repo / "real",
            checkpoint_dir=repo / "cp",
            catalog_url=f"sqlite:///{repo}/catalog.db",
            database_url=cluster.url(),
            wal_command=warroom_for_postgres(repo),
        )
        with build_services(settings) as services:
            services.pitr.apply_archiving_settings(None)
        rows = _auto_conf(cluster)
        assert "wal_level" not in rows  # left at logical
        assert rows["archive_mode"] == "on" and "wal push %p" in rows["archive_command"]


def _ready_files(cluster: Cluster) -> list[Path]:
    return sorted((cluster.data_dir / "pg_wal" / "archive_status").glob("*.ready"))


def test_status_sees_an_archive_command_that_cannot_run(tmp_path: Path) -> None:
    """The archiver treats exit 126 as fatal and never counts a failure: status judges by the
    segments left waiting (their .ready files, back-dated here past the limit)."""
    not_executable = tmp_path / "warroom"
    not_executable.write_text("#!/bin/sh\nexit 0\n")
    push = f"{not_executable} wal push %p"
    conf = {"wal_level": "replica", "archive_mode": "on", "archive_command": push}
    with throwaway_cluster(auth="trust", conf=conf) as cluster:
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            for _ in range(2):
                conn.execute("CREATE TABLE IF NOT EXISTS t AS SELECT 1 AS x")
                conn.execute("SELECT pg_switch_wal()")
        ready = _ready_files(cluster)
        assert ready, "the switched segments wait to be archived"
        an_hour_ago = time.time() - 3600
        for path in ready:
            os.utime(path, (an_hour_ago, an_hour_ago))
        settings = Settings(
            backup_dir=tmp_path / "repo",
            checkpoint_dir=tmp_path / "cp",
            catalog_url=f"sqlite:///{tmp_path}/catalog.db",
            database_url=cluster.url(),
        )
        with build_services(settings) as services:
            status = system_status(services, services.backups.clock())
            from prometheus_client import generate_latest

            from warroom.api.metrics import build_registry

            metrics = generate_latest(build_registry(services)).decode()
    archiving = status["wal_archiving"]
    assert archiving["failed_count"] == 0 and archiving["last_archived_wal"] is None
    assert archiving["failing"] and archiving["ready_count"] == len(ready)
    assert not status["healthy"]
    [problem] = [p for p in status["problems"] if "WAL archiving is failing" in p]
    assert f"{len(ready)} segments wait to be archived, the oldest for 60 min" in problem
    assert "warroom_wal_archiving_failing 1.0" in metrics
    assert f"warroom_wal_archive_ready_segments {float(len(ready))}" in metrics


def test_setup_pitr_apply_refuses_commands_the_server_cannot_run(repo: Path) -> None:
    """setup-pitr --apply runs the WAL commands through the server, as its OS user, first."""
    with throwaway_cluster(auth="trust") as cluster:
        # A warroom only root may execute (as one under root's home would be, whatever
        # interpreter runs these tests): the postgres user cannot run it.
        private = repo / "root-only" / "warroom"
        private.parent.mkdir(mode=0o700)
        private.write_text("#!/bin/sh\nexit 0\n")
        private.chmod(0o700)
        env = cli_env(
            repo,
            DATABASE_URL=cluster.url(),
            BACKUP_DIR=str(repo / "real"),
            WARROOM_WAL_COMMAND=str(private),
        )
        refused = run_warroom("setup-pitr", "--apply", env=env, cwd=repo)
        assert refused.code == 2, refused.stderr
        assert "archive_command would fail on the server" in refused.stderr
        assert "exited 126 (not executable by that user)" in refused.stderr
        assert "Nothing was changed" in refused.stderr

        settings = Settings(
            backup_dir=repo / "repo",  # a file, not a directory: pushes cannot work
            checkpoint_dir=repo / "cp",
            catalog_url=f"sqlite:///{repo}/catalog.db",
            database_url=cluster.url(),
            wal_command=warroom_for_postgres(repo),
        )
        with build_services(settings) as services, pytest.raises(ConfigurationError) as caught:
            services.pitr.apply_archiving_settings(None)
        assert "archive_command would fail" in caught.value.message
        assert "exited 1" in caught.value.message
        assert _auto_conf(cluster) == {}

        (repo / "repo").unlink()
        (repo / "repo").symlink_to(repo / "real")
        with build_services(settings) as services:
            services.pitr.apply_archiving_settings(None)
        assert "wal push %p" in _auto_conf(cluster)["archive_command"]
        assert not list((repo / "real" / "wal" / "checks").iterdir())  # the probe is gone


def _auto_conf(cluster: Cluster) -> dict[str, str]:
    """The settings ALTER SYSTEM wrote."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE "
            "'%postgresql.auto.conf' AND applied IS NOT NULL"
        ).fetchall()
    return dict(rows)
