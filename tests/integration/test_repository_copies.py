"""Where each backup is, and whether each copy is intact: ``warroom list`` shows the copies of a
backup per repository (a local primary, an encrypted S3 replica on moto), and ``warroom verify
--all-copies`` reads every copy's checksums on its own: a replica damaged with its size kept
(which a listing cannot see) exits 3 naming it, a missing one exits 1."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.e2e.cli import cli_env, run_warroom
from tests.s3server import S3Server
from warroom.repository.keyring import generate_key


def test_verify_all_copies_finds_the_damaged_replica(tmp_path: Path, s3_server: S3Server) -> None:
    source = tmp_path / "app.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(100)])
    key_file = tmp_path / "key"
    key_file.write_text(generate_key() + "\n")
    bucket = s3_server.new_bucket()
    replica = f"s3://{bucket}/copy"
    env = cli_env(
        tmp_path,
        **s3_server.environment(),
        WARROOM_REPLICAS=replica,
        WARROOM_ENCRYPTION_KEY_FILE=str(key_file),
    )

    def warroom(*args: str) -> tuple[int, str, str]:
        done = run_warroom(*args, env=env, cwd=tmp_path)
        return done.code, done.stdout, done.stderr

    code, _, err = warroom("create", "database", "--url", f"sqlite:///{source}", "--name", "b1")
    assert code == 0, err
    code, out, _ = warroom("list", "--type", "database")
    assert code == 0 and "COPIES" in out and "2/2" in out
    code, out, _ = warroom("verify", "b1", "--all-copies")
    assert code == 0 and out.count(": intact (") == 2, out

    s3 = s3_server.client()
    parts = [
        item["Key"]
        for item in s3.list_objects_v2(Bucket=bucket, Prefix="copy/database/b1/")["Contents"]
        if "/checks/" not in item["Key"] and not item["Key"].endswith("manifest.json")
    ]
    stored = bytearray(s3.get_object(Bucket=bucket, Key=parts[0])["Body"].read())
    stored[len(stored) // 2] ^= 0x01  # same size: only a read of every byte sees it
    s3.put_object(Bucket=bucket, Key=parts[0], Body=bytes(stored))
    code, out, _ = warroom("list", "--type", "database")
    assert "2/2" in out  # a listing checks sizes, not bytes
    code, out, _ = warroom("verify", "b1", "--all-copies", "--json")
    assert code == 3
    states = {c["location"]: c["state"] for c in json.loads(out)["copies"]}
    assert states == {str(tmp_path / "backups"): "intact", replica: "damaged"}

    s3.delete_object(Bucket=bucket, Key="copy/database/b1/manifest.json")
    code, out, _ = warroom("list", "--type", "database")
    assert f"1/2, missing in {replica}" in out
    code, out, _ = warroom("verify", "b1", "--all-copies")
    assert code == 1 and f"b1 in {replica}: missing" in out

    code, _, err = warroom("verify", "b1", "--all-copies", "--restore-test")
    assert code == 2 and "--all-copies" in err and "Traceback" not in err
    assert "test-secret-never-printed" not in out + err
