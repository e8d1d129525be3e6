"""Backups, WAL and restores through the repository end to end: S3 (moto's server on
loopback), encryption, replicas with a lost or damaged primary, repo sync, key rotation, and a
local repository written by the version before the repository was wired in."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import pg_url
from tests.dbcompare import fill_rich_database, pg_snapshot
from tests.s3server import S3Server
from warroom.app.listing import checkpoint_listing
from warroom.codec import MAGIC
from warroom.config import Settings
from warroom.errors import ConflictError, IntegrityError
from warroom.repository.keyring import generate_key, key_id
from warroom.repository.locks import LeaseLocker
from warroom.repository.s3 import S3Storage
from warroom.services import Services, build_services

ROOT = Path(__file__).resolve().parents[2]
# The last commit before backups, WAL and blobs went through the repository.
BEFORE_WIRING = "2fbbb286f2e67fa20105d7bb58871db5ebb58a80"


@pytest.fixture
def aws(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    return s3_server


def _settings(tmp_path: Path, backup_dir: str | Path, **extra: object) -> Settings:
    return Settings(
        backup_dir=backup_dir,
        checkpoint_dir=tmp_path / "checkpoints",
        catalog_url=f"sqlite:///{tmp_path}/catalog.db",
        **extra,
    )


def _key_file(tmp_path: Path, *keys: str) -> Path:
    path = tmp_path / f"keys-{len(list(tmp_path.glob('keys-*')))}"
    path.write_text("\n".join(keys) + "\n")
    return path


@pytest.fixture
def restored(pg_names: list[str]) -> Iterator[str]:
    pg_names.append("wrt_wiring_restored")
    yield pg_url("wrt_wiring_restored")


def _round_trip(services: Services, source: str, target: str) -> str:
    """Back up ``source``, restore it as ``target`` (equal), return where it was read."""
    services.backups.create(url=source, name="trip")
    report = services.backups.restore("trip", new_db=target.rsplit("/", 1)[1], url=source)
    assert pg_snapshot(target) == pg_snapshot(source)
    return str(report.details["repository"])


def test_postgres_backup_round_trip_through_s3_encrypted(
    tmp_path: Path, aws: S3Server, pg_db: str, restored: str
) -> None:
    fill_rich_database(pg_db)
    bucket = aws.new_bucket()
    settings = _settings(
        tmp_path, f"s3://{bucket}/repo", encryption_key_file=_key_file(tmp_path, generate_key())
    )
    with build_services(settings) as services:
        assert _round_trip(services, pg_db, restored) == f"s3://{bucket}/repo"
        report = services.backups.verify("trip", restore_test=True, url=pg_db)
        assert report.status == "restore-tested"
        assert services.backups.rebuild_catalog(check=True) == (1, [])
        s3 = S3Storage(bucket, "repo")
        objects = [info.key for info in s3.list() if not info.key.startswith("keys/")]
        assert any(key.endswith("manifest.json") for key in objects)
        assert any("/checks/" in key for key in objects)
        for key in objects:  # parts, manifest, check records: all encrypted
            data = b"".join(s3.get(key))
            assert data.startswith(MAGIC) and b"public.customers" not in data, key
        services.backups.delete("trip")
        assert not services.backups.exists("trip")
        assert [info.key for info in s3.list("database/")] == []


def _warroom(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warroom", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("encrypted", [False, True])
def test_wal_push_and_fetch_against_s3(tmp_path: Path, aws: S3Server, encrypted: bool) -> None:
    segment = tmp_path / "000000010000000000000003"
    segment.write_bytes(os.urandom(1 << 20) + bytes(15 << 20))
    env = {**aws.environment(), "BACKUP_DIR": f"s3://{aws.new_bucket()}/wal"}
    if encrypted:
        env["WARROOM_ENCRYPTION_KEY_FILE"] = str(_key_file(tmp_path, generate_key()))
    pushed = _warroom(env, "wal", "push", str(segment))
    assert pushed.returncode == 0, pushed.stderr
    assert _warroom(env, "wal", "push", str(segment)).returncode == 0  # idempotent
    fetched = _warroom(env, "wal", "fetch", segment.name, str(tmp_path / "out" / "seg"))
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "out" / "seg").read_bytes() == segment.read_bytes()
    absent = _warroom(env, "wal", "fetch", "000000010000000000000009", str(tmp_path / "x"))
    assert absent.returncode == 1
    if encrypted:
        env.pop("WARROOM_ENCRYPTION_KEY_FILE")
        refused = _warroom(env, "wal", "fetch", segment.name, str(tmp_path / "y"))
        assert refused.returncode == 255 and "is encrypted" in refused.stderr
        assert aws.environment()["AWS_SECRET_ACCESS_KEY"] not in refused.stderr


@pytest.mark.parametrize("case", ["wrong key", "no key", "key into unencrypted"])
def test_a_misconfigured_wal_push_to_s3_fails_and_writes_nothing(
    tmp_path: Path, aws: S3Server, case: str
) -> None:
    """The push compresses while it opens the repository's keys: a key that opens nothing,
    a missing key, or a key for an unencrypted repository still fails it before it writes."""
    bucket = aws.new_bucket()
    env = {**aws.environment(), "BACKUP_DIR": f"s3://{bucket}/wal"}
    first = tmp_path / "000000010000000000000001"
    first.write_bytes(os.urandom(1 << 20) + bytes(15 << 20))
    if case != "key into unencrypted":
        env["WARROOM_ENCRYPTION_KEY_FILE"] = str(_key_file(tmp_path, generate_key()))
    assert _warroom(env, "wal", "push", str(first)).returncode == 0
    stored = sorted(o["Key"] for o in aws.client().list_objects_v2(Bucket=bucket)["Contents"])
    env.pop("WARROOM_ENCRYPTION_KEY_FILE", None)
    if case != "no key":
        env["WARROOM_ENCRYPTION_KEY_FILE"] = str(_key_file(tmp_path, generate_key()))
    second = tmp_path / "000000010000000000000002"
    second.write_bytes(os.urandom(1 << 20) + bytes(15 << 20))
    refused = _warroom(env, "wal", "push", str(second))
    expected = {
        "wrong key": "none of the configured keys",
        "no key": "is encrypted",
        "key into unencrypted": "holds unencrypted objects",
    }
    assert refused.returncode == 1 and expected[case] in refused.stderr, refused.stderr
    after = sorted(o["Key"] for o in aws.client().list_objects_v2(Bucket=bucket)["Contents"])
    assert after == stored
    uploads = aws.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert uploads == []


@pytest.mark.parametrize("loss", ["deleted", "damaged"])
def test_restore_and_wal_fetch_use_a_replica_when_the_primary_is_lost(
    tmp_path: Path, aws: S3Server, pg_db: str, restored: str, loss: str
) -> None:
    fill_rich_database(pg_db)
    primary, replica = tmp_path / "primary", f"s3://{aws.new_bucket()}/replica"
    key_file = _key_file(tmp_path, generate_key())
    settings = _settings(tmp_path, primary, replicas=replica, encryption_key_file=key_file)
    segment = tmp_path / "000000010000000000000001"
    segment.write_bytes(os.urandom(1 << 16))
    with build_services(settings) as services:
        services.backups.create(url=pg_db, name="trip")
        services.wal.push(segment)
        listing = checkpoint_listing(services, services.backups.clock())
        (row,) = [r for r in listing["checkpoints"] if r["name"] == "trip"]
        assert row["repositories"] == {str(primary): "present", replica: "present"}
    if loss == "deleted":
        shutil.rmtree(primary)
    else:
        for part in (primary / "database" / "trip").glob("copy-*"):
            data = bytearray(part.read_bytes())
            data[len(data) // 2] ^= 1
            part.write_bytes(bytes(data))
        record = primary / "wal" / "00000001" / (segment.name + ".json")
        record.write_text("{}")
    with build_services(settings) as services:
        report = services.backups.restore("trip", new_db=restored.rsplit("/", 1)[1], url=pg_db)
        assert report.details["repository"] == replica
        assert pg_snapshot(restored) == pg_snapshot(pg_db)
        assert services.wal.fetch(segment.name, tmp_path / "fetched") == replica
        assert (tmp_path / "fetched").read_bytes() == segment.read_bytes()


def test_repo_sync_copies_what_a_replica_lacks(
    tmp_path: Path, aws: S3Server, pg_db: str, restored: str
) -> None:
    fill_rich_database(pg_db)
    primary, replica = f"s3://{aws.new_bucket()}/p", tmp_path / "replica"
    with build_services(_settings(tmp_path, primary)) as services:
        services.backups.create(url=pg_db, name="trip")
    mirrored = _settings(tmp_path, primary, replicas=str(replica))
    with build_services(mirrored) as services:
        (row,) = checkpoint_listing(services, services.backups.clock())["checkpoints"]
        assert row["repositories"] == {primary: "present", str(replica): "missing"}
        from warroom.repository.replication import sync

        first = sync(services.repository.storage.copies())
        assert first.copied[str(replica)] > 2 and first.copied[primary] == 0
        assert sync(services.repository.storage.copies()).copied[str(replica)] == 0
    # The replica alone is a whole repository: index it and restore from it.
    with build_services(_settings(tmp_path, replica)) as services:
        assert services.backups.rebuild_catalog(check=True) == (1, [])
        report = services.backups.restore("trip", new_db=restored.rsplit("/", 1)[1], url=pg_db)
        assert report.details["repository"] == str(replica)
    assert pg_snapshot(restored) == pg_snapshot(pg_db)


def test_key_rotate_then_retire_then_restore_with_the_new_key(
    tmp_path: Path, pg_db: str, restored: str
) -> None:
    fill_rich_database(pg_db)
    old, new = generate_key(), generate_key()
    repository = tmp_path / "repo"
    with build_services(
        _settings(tmp_path, repository, encryption_key_file=_key_file(tmp_path, old))
    ) as services:
        services.backups.create(url=pg_db, name="trip")
    env = {"BACKUP_DIR": str(repository), "WARROOM_CATALOG_URL": f"sqlite:///{tmp_path}/c.db"}
    env["WARROOM_ENCRYPTION_KEY_FILE"] = str(_key_file(tmp_path, new, old))
    rotated = _warroom(env, "key", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    old_id, new_id = key_id(base64.b64decode(old)), key_id(base64.b64decode(new))
    listed = json.loads(_warroom(env, "key", "list", "--json").stdout)["keys"]
    assert [(k["id"], k["current"], k["repository_keys"], k["of"]) for k in listed] == sorted(
        [(old_id, False, 2, 2), (new_id, True, 2, 2)]  # the new one is wrapped under both
    )
    retired = _warroom(env, "key", "retire", old_id)
    assert retired.returncode == 0, retired.stderr
    after = _warroom(env, "key", "list")
    assert after.returncode == 0 and old_id not in after.stdout
    assert f"{new_id}  yes" in after.stdout and "2 of 2 repository keys" in after.stdout
    outputs = (rotated, retired, after)
    assert not any(old in o.stdout + o.stderr or new in o.stdout + o.stderr for o in outputs)
    with (
        build_services(
            _settings(tmp_path, repository, encryption_key_file=_key_file(tmp_path, old))
        ) as services,
        pytest.raises(IntegrityError, match="none of the configured keys"),
    ):
        services.backups.manifest("trip")
    with build_services(
        _settings(tmp_path, repository, encryption_key_file=_key_file(tmp_path, new))
    ) as services:
        services.backups.restore("trip", new_db=restored.rsplit("/", 1)[1], url=pg_db)
    assert pg_snapshot(restored) == pg_snapshot(pg_db)


def test_a_local_repository_written_before_the_wiring_still_restores(
    tmp_path: Path, pg_db: str, restored: str
) -> None:
    """The previous version's code (from git) writes the backup; this one restores it."""
    fill_rich_database(pg_db)
    old = tmp_path / "old"
    old.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", BEFORE_WIRING, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    script = (
        "from warroom.config import Settings; from warroom.services import build_services\n"
        f"s = Settings(backup_dir={str(tmp_path / 'repo')!r}, "
        f"checkpoint_dir={str(tmp_path / 'cp')!r}, catalog_url='sqlite:///{tmp_path}/old.db')\n"
        f"build_services(s).backups.create(url={pg_db!r}, name='before')\n"
    )
    made = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(old / "src")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    with build_services(_settings(tmp_path, tmp_path / "repo")) as services:
        assert services.backups.rebuild_catalog(check=True) == (1, [])
        assert services.backups.verify("before").status == "checked"
        services.backups.restore("before", new_db=restored.rsplit("/", 1)[1], url=pg_db)
    # Backups of that version did not record which materialized views were populated (it
    # restored them unpopulated): everything else must be equal.
    assert replace(pg_snapshot(restored), matviews={}) == replace(pg_snapshot(pg_db), matviews={})


def test_s3_leases_exclude_other_hosts_and_a_stale_one_is_taken_over(aws: S3Server) -> None:
    storage = S3Storage(aws.new_bucket(), "locks-test")
    first, second = LeaseLocker(storage), LeaseLocker(storage)
    with first.hold("name:b", "a backup named 'b'"):
        with pytest.raises(ConflictError, match="a backup named 'b' is already running"):
            with second.hold("name:b", "a backup named 'b'"):
                pass
        with second.try_hold("name:b") as free:
            assert not free
        with second.try_hold("name:other") as free:
            assert free
    with second.try_hold("name:b") as free:
        assert free  # released
    # A holder killed mid-lease: its lease is not renewed; once older than the ttl, it is
    # taken over (the later clock stands for time passing), and the old holder, when it
    # ends, does not delete the new holder's lease.
    later = LeaseLocker(storage, clock=lambda: first.clock() + timedelta(seconds=first.ttl + 1))
    with ExitStack() as killed:
        killed.enter_context(first.hold("name:c", "c"))
        with later.hold("name:c", "c"):
            killed.close()
            with pytest.raises(ConflictError), second.hold("name:c", "c"):
                pass
