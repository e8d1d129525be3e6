"""Point-in-time recovery through S3 (moto's server on loopback), encrypted: a throwaway
cluster archives with the archive_command setup-pitr writes (``warroom wal push`` as the
postgres user, credentials from the server's environment, never in the command), a physical
base backup goes to the bucket, and a recovery to a moment brings back exactly the rows
committed before it, fetching WAL from the bucket."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.pgcluster import (
    S3_AND_CRYPTO,
    archiver_state,
    recovered_server,
    switch_wal,
    throwaway_cluster,
    wait_for,
    warroom_for_postgres,
)
from tests.s3server import ENVIRONMENT, S3Server
from warroom.codec import MAGIC
from warroom.config import Settings
from warroom.database.pitr import RecoveryTarget
from warroom.repository.keyring import generate_key
from warroom.repository.s3 import S3Storage
from warroom.services import build_services


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory the cluster's postgres user can read (pytest's tmp dirs are root-only)."""
    path = Path(tempfile.mkdtemp(prefix="warroom-pitr-s3-"))
    shutil.chown(path, "postgres", "postgres")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_point_in_time_recovery_through_s3_encrypted(
    base: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)  # the servers started below inherit them
    key_file = base / "key"
    key_file.write_text(generate_key() + "\n")
    shutil.chown(key_file, "postgres", "postgres")
    key_file.chmod(0o600)
    bucket = s3_server.new_bucket()
    settings = Settings(
        backup_dir=f"s3://{bucket}/pitr",
        checkpoint_dir=base / "cp",
        catalog_url=f"sqlite:///{base}/catalog.db",
        encryption_key_file=key_file,
        wal_command=warroom_for_postgres(base, S3_AND_CRYPTO),
    )
    with build_services(settings) as services:
        conf = services.pitr.archiving_settings()
        assert "wal push %p" in conf["archive_command"]
        assert all(secret not in conf["archive_command"] for secret in ENVIRONMENT.values())
        with throwaway_cluster(auth="trust", conf=conf) as cluster:
            url = cluster.url()
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE TABLE orders (id serial PRIMARY KEY, v text)")
                conn.execute("INSERT INTO orders (v) SELECT 'base' FROM generate_series(1, 50)")
            base_backup = services.backups.create(url=url, physical=True)
            assert base_backup.kind == "physical"

            with psycopg.connect(url, autocommit=True) as conn:
                for batch in range(2):  # rows across two WAL segments
                    conn.execute(
                        "INSERT INTO orders (v) SELECT %s FROM generate_series(1, 40)",
                        (f"after-base-{batch}",),
                    )
                    conn.execute("SELECT pg_switch_wal()")
                # After the commits above and before the one below, on the server's clock.
                row = conn.execute("SELECT clock_timestamp()").fetchone()
                assert row is not None
                target = row[0]
                conn.execute("INSERT INTO orders (v) SELECT 'too-late' FROM generate_series(1, 7)")
            last = switch_wal(cluster)
            wait_for(lambda: (archiver_state(cluster)[1] or "") >= last, what="archiving")
            assert archiver_state(cluster)[2] == 0  # no push failed

        s3 = S3Storage(bucket, "pitr")
        wal = [info.key for info in s3.list("wal/") if not info.key.endswith(".json")]
        assert len(wal) >= 3
        for key in wal:  # segments are encrypted objects, not PostgreSQL's bytes
            assert b"".join(s3.get(key)).startswith(MAGIC), key

        at_target = RecoveryTarget(time=target)
        with recovered_server(services.pitr, at_target, base / "recovered") as (report, url):
            assert report["promoted"] and report["base_backup"] == base_backup.name
            with psycopg.connect(url, autocommit=True) as conn:
                rows = conn.execute("SELECT v, count(*) FROM orders GROUP BY v ORDER BY v")
                assert rows.fetchall() == [
                    ("after-base-0", 40),
                    ("after-base-1", 40),
                    ("base", 50),
                ]
