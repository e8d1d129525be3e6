"""The deployment check of the backup storage on S3 (moto's server on loopback): a bucket is
reached and written through the Storage protocol (a probe object, deleted at once), and its
encryption must match the configuration; replicas are checked too. No credential is shown."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.s3server import ENVIRONMENT, S3Server, recording_proxy
from warroom.catalog import open_catalog
from warroom.config import Settings
from warroom.config.deployment import DeploymentConfig
from warroom.deployment.checks import CheckContext, CheckResult, build_checks
from warroom.repository import open_repository
from warroom.repository.keyring import generate_key
from warroom.repository.s3 import S3Storage


@pytest.fixture
def aws(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    return s3_server


def _storage_check(tmp_path: Path, **settings: object) -> CheckResult:
    (tmp_path / "checkpoints").mkdir(exist_ok=True)
    config = Settings(
        checkpoint_dir=tmp_path / "checkpoints",
        catalog_url=f"sqlite:///{tmp_path}/catalog.db",
        **settings,
    )
    deployment = DeploymentConfig.model_validate({"env": {"required": []}})
    (check,) = [c for c in build_checks(deployment) if c.name == "storage"]
    catalog = open_catalog(config.catalog_url)
    try:
        context = CheckContext(config, catalog, {}, datetime.now(UTC), tmp_path)
        result = check.run(context)
    finally:
        catalog.close()
    assert all(secret not in result.message for secret in ENVIRONMENT.values())
    return result


def _key_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_text(generate_key() + "\n")
    return path


def test_an_s3_repository_is_probed_and_left_as_it_was(tmp_path: Path, aws: S3Server) -> None:
    bucket = aws.new_bucket()
    result = _storage_check(tmp_path, backup_dir=f"s3://{bucket}/repo")
    assert result.status == "passed", result.message
    assert list(S3Storage(bucket, "repo").list()) == []  # the probe is gone

    key = _key_file(tmp_path, "key")
    result = _storage_check(tmp_path, backup_dir=f"s3://{bucket}/repo", encryption_key_file=key)
    assert result.status == "passed", result.message
    assert list(S3Storage(bucket, "repo").list()) == []  # an empty one is not made encrypted


def test_an_unreachable_bucket_fails_naming_it(tmp_path: Path, aws: S3Server) -> None:
    result = _storage_check(tmp_path, backup_dir="s3://no-such-bucket-here/repo")
    assert result.status == "failed"
    assert "BACKUP_DIR s3://no-such-bucket-here/repo: " in result.message
    assert "NoSuchBucket" in result.message
    (tmp_path / "backups").mkdir()
    result = _storage_check(
        tmp_path,
        backup_dir=tmp_path / "backups",
        replicas="s3://no-such-bucket-here/copy?keep_days=30",
    )
    assert result.status == "failed"
    assert result.message.startswith("WARROOM_REPLICAS s3://no-such-bucket-here/copy: ")


def test_encryption_must_match_the_configuration(tmp_path: Path, aws: S3Server) -> None:
    encrypted, plain = f"s3://{aws.new_bucket()}/e", f"s3://{aws.new_bucket()}/p"
    key, other = _key_file(tmp_path, "key"), _key_file(tmp_path, "other")
    open_repository(encrypted, Settings(encryption_key_file=key).master_keys()).put_document(
        "workflow/blobs/x", b"{}"
    )
    open_repository(plain).put_document("workflow/blobs/x", b"{}")

    assert _storage_check(tmp_path, backup_dir=encrypted, encryption_key_file=key).status == (
        "passed"
    )
    result = _storage_check(tmp_path, backup_dir=encrypted)
    assert result.status == "failed" and "is encrypted: set WARROOM_ENCRYPTION_KEY_FILE" in (
        result.message
    )
    result = _storage_check(tmp_path, backup_dir=encrypted, encryption_key_file=other)
    assert result.status == "failed" and result.message.startswith(f"BACKUP_DIR {encrypted}:")
    result = _storage_check(tmp_path, backup_dir=plain, encryption_key_file=key)
    assert result.status == "failed" and "holds unencrypted objects" in result.message


def test_a_server_that_ignores_conditional_writes_fails_the_check(
    tmp_path: Path, aws: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """warroom's locks on S3 are conditional writes: behind a server that drops If-None-Match
    and If-Match (as old S3-compatible servers do), two takers would both hold a lock."""
    bucket = aws.new_bucket()
    with recording_proxy(aws, ignored=frozenset({"if-none-match", "if-match"})) as (proxy, _):
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        result = _storage_check(tmp_path, backup_dir=f"s3://{bucket}/repo")
    assert result.status == "failed"
    assert result.message.startswith(f"BACKUP_DIR s3://{bucket}/repo: the locks of ")
    assert "ignores conditional writes (If-None-Match)" in result.message
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)
    assert list(S3Storage(bucket, "repo").list()) == []  # no probe or lease left behind
