"""The minimal S3 client against real servers: moto's server on loopback (the session's, and
one started here that checks signatures), objects exchanged with botocore's client byte for
byte, its errors as S3Storage reports them, and ``warroom wal push/fetch/check`` run as
PostgreSQL runs them, without botocore unless the environment needs it."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

from tests.s3server import ENVIRONMENT, S3Server, moto_server
from warroom.errors import NotFoundError, StorageError, TransientStorageError
from warroom.repository import Repository, RetryStorage
from warroom.repository.keyring import generate_key
from warroom.repository.s3 import S3Storage
from warroom.repository.s3wire import wire_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1 << 20


def wire(environment: dict[str, str]) -> S3Client:
    client = wire_client(environment)
    assert client is not None
    return cast("S3Client", client)


def pair(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> tuple[S3Storage, S3Storage]:
    """The same bucket and prefix through botocore's client and through the minimal one."""
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    bucket = server.new_bucket()
    boto = S3Storage(bucket, "r", part_size=5 * MiB)
    return boto, S3Storage(bucket, "r", part_size=5 * MiB, client=wire(server.environment()))


@pytest.mark.parametrize("encrypted", [False, True])
def test_objects_cross_clients_byte_identical(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, encrypted: bool
) -> None:
    boto, minimal = pair(s3_server, monkeypatch)
    keys = [base64.b64decode(generate_key())] if encrypted else []
    plain = os.urandom(6 * MiB) + b"row\n" * 100_000  # two parts: a multipart upload
    for writer, reader in ((boto, minimal), (minimal, boto)):
        key = f"wal/{type(writer.client).__name__}"
        digest = Repository(writer, master_keys=keys).write(key, [plain])
        reading = Repository(reader, master_keys=keys).read(key)
        assert b"".join(reading) == plain
        reading.check(digest.plain_sha256, digest.stored_sha256)
        assert b"".join(writer.get(key)) == b"".join(reader.get(key))
        assert writer.stat(key).size == reader.stat(key).size
    assert Repository(minimal, master_keys=keys).encrypted is encrypted
    assert [info.key for info in minimal.list()] == [info.key for info in boto.list()]


@pytest.fixture(scope="module")
def checking_server() -> Iterator[tuple[S3Server, dict[str, str]]]:
    """A moto server that checks every request's signature, with a user allowed all of S3
    (its four set-up requests are the unchecked ones), and that user's environment. Its
    listings have pages of two keys, so that paging (signed continuation tokens) is tested."""
    settings = {"INITIAL_NO_AUTH_ACTION_COUNT": "4", "MOTO_S3_DEFAULT_MAX_KEYS": "2"}
    with moto_server(settings) as server:
        import boto3

        options = {
            "endpoint_url": server.endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": ENVIRONMENT["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": ENVIRONMENT["AWS_SECRET_ACCESS_KEY"],
        }
        iam = boto3.client("iam", **options)  # type: ignore[call-overload]
        iam.create_user(UserName="wal")
        policy = {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(
            UserName="wal",
            PolicyName="s3",
            PolicyDocument=json.dumps(policy | {"Version": "2012-10-17"}),
        )
        key = iam.create_access_key(UserName="wal")["AccessKey"]
        boto3.client("s3", **options).create_bucket(Bucket="signed")  # type: ignore[call-overload]
        yield (
            server,
            {
                "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
                "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": server.endpoint,
            },
        )


def test_a_server_checking_signatures_accepts_every_call(
    checking_server: tuple[S3Server, dict[str, str]],
) -> None:
    _, environment = checking_server
    storage = S3Storage("signed", "p q+r", part_size=5 * MiB, client=wire(environment))
    storage.put("wal/a b+c~d", [b"small"])
    for name in "vwxyz":
        storage.put(f"wal/{name}", [name.encode()])
        storage.put(f"keys/{name}/k", [name.encode()])
    expected = ["wal/a b+c~d", *(f"wal/{name}" for name in "vwxyz")]
    assert [info.key for info in storage.list("wal/")] == expected
    assert storage.children("keys") == list("vwxyz")
    storage.delete_prefix("keys")
    storage.put("database/x/copy-00001", [os.urandom(11 * MiB)])  # multipart, three parts
    assert b"".join(storage.get("wal/a b+c~d")) == b"small"
    assert storage.stat("database/x/copy-00001").size == 11 * MiB
    assert storage.children("database") == ["x"]
    assert storage.swap("lease", b"1", None) and storage.swap("lease", b"2", None) is None
    storage.delete_prefix("database")
    storage.delete_prefix("wal")
    assert [info.key for info in storage.list()] == ["lease"]


def test_a_wrong_secret_names_the_bucket_never_the_secret(
    checking_server: tuple[S3Server, dict[str, str]],
) -> None:
    _, environment = checking_server
    wrong = {**environment, "AWS_SECRET_ACCESS_KEY": "wrong-secret-never-printed"}
    storage = S3Storage("signed", "p", client=wire(wrong))
    with pytest.raises(StorageError) as raised:
        storage.put("k", [b"v"])
    assert not isinstance(raised.value, TransientStorageError)
    text = f"{raised.value.message} {raised.value.details}"
    assert "s3://signed/p/k" in text and "SignatureDoesNotMatch" in text
    for secret in (wrong["AWS_SECRET_ACCESS_KEY"], environment["AWS_SECRET_ACCESS_KEY"]):
        assert secret not in text


def test_missing_bucket_and_missing_object(s3_server: S3Server) -> None:
    client = wire(s3_server.environment())
    missing = S3Storage("no-such-bucket-here", "r", client=client)
    with pytest.raises(StorageError, match="s3://no-such-bucket-here/r/k: NoSuchBucket") as raised:
        missing.put("k", [b"v"])
    assert not isinstance(raised.value, NotFoundError | TransientStorageError)
    storage = S3Storage(s3_server.new_bucket(), "r", client=client)
    for read in (storage.get, storage.stat):
        with pytest.raises(NotFoundError, match="nope"):
            read("nope")


class Unavailable(BaseHTTPRequestHandler):
    """Answers every request as an overloaded S3 does: 503 SlowDown."""

    status, code, message = 503, "SlowDown", "Reduce your request rate."

    def answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = f"<Error><Code>{self.code}</Code><Message>{self.message}</Message></Error>".encode()
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class Unimplemented(Unavailable):
    """Answers as R2 or Ceph RGW answer a call they do not implement: 501 NotImplemented."""

    status, code, message = 501, "NotImplemented", "Not implemented."


@contextmanager
def answering(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on loopback answering with ``handler``; its endpoint."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_unavailable_and_unreachable_servers_are_transient() -> None:
    """moto cannot be made to answer 503 on demand: a real HTTP server on loopback that
    always does stands in for an overloaded S3."""
    with answering(Unavailable) as endpoint:
        storage = S3Storage("b", "r", client=wire({**ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint}))
        for call in (lambda: storage.put("k", [b"v"]), lambda: storage.get("k")):
            with pytest.raises(TransientStorageError, match="SlowDown"):
                call()
        with pytest.raises(TransientStorageError, match="503"):
            storage.stat("k")
        sleeps: list[float] = []
        with pytest.raises(TransientStorageError):
            RetryStorage(storage, sleep=sleeps.append).put("k", [b"v"])
        assert sleeps  # the retry wrapper tried again
    with socket.socket() as probe:  # a port nothing listens on any more
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = {**ENVIRONMENT, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    with pytest.raises(TransientStorageError, match="ConnectionRefusedError"):
        S3Storage("b", "r", client=wire(refused)).put("k", [b"v"])


@pytest.mark.parametrize("minimal", [False, True])
def test_an_unimplemented_call_is_permanent(monkeypatch: pytest.MonkeyPatch, minimal: bool) -> None:
    """A 501 is no passing fault: the retry wrapper gives up at once, with S3's word."""
    with answering(Unimplemented) as endpoint:
        environment = {**ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint}
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        storage = S3Storage("b", "r", client=wire(environment) if minimal else None)
        for call in (lambda: storage.put("k", [b"v"]), lambda: storage.stat("k")):
            with pytest.raises(StorageError, match="NotImplemented|501") as raised:
                call()
            assert not isinstance(raised.value, TransientStorageError)
        sleeps: list[float] = []
        with pytest.raises(StorageError, match="NotImplemented"):
            RetryStorage(storage, sleep=sleeps.append).put("k", [b"v"])
        assert sleeps == []


def wal(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``warroom wal ...`` as PostgreSQL runs it, with ``-X importtime`` on stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WARROOM_"))}
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "warroom", "wal", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def imported(result: subprocess.CompletedProcess[str]) -> set[str]:
    return {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def push_fetch_check(env: dict[str, str], tmp_path: Path) -> set[str]:
    """Push a segment, fetch it back, check the archive; every top-level package imported."""
    segment = tmp_path / "000000010000000000000001"
    segment.write_bytes(os.urandom(64 * 1024) + bytes(MiB))
    fetched = tmp_path / "restored" / "RECOVERYXLOG"
    results = [
        wal(["push", str(segment)], env),
        wal(["fetch", segment.name, str(fetched)], env),
        wal(["check"], env),
    ]
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
    assert fetched.read_bytes() == segment.read_bytes()
    assert wal(["fetch", "000000010000000000000009", str(fetched)], env).returncode == 1
    return set.union(*(imported(result) for result in results))


@pytest.mark.parametrize("encrypted", [False, True])
def test_wal_commands_with_static_credentials_never_import_botocore(
    s3_server: S3Server, tmp_path: Path, encrypted: bool
) -> None:
    env = {**s3_server.environment(), "BACKUP_DIR": f"s3://{s3_server.new_bucket()}/r"}
    if encrypted:
        (tmp_path / "key").write_text(generate_key())
        env["WARROOM_ENCRYPTION_KEY_FILE"] = str(tmp_path / "key")
    modules = push_fetch_check(env, tmp_path)
    assert "warroom" in modules and not modules & {"botocore", "boto3", "s3transfer"}


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_wal_push_to_s3_imports_only_what_it_uses(
    s3_server: S3Server, tmp_path: Path, encrypted: bool
) -> None:
    """A push is an object of one part and its record: neither an upload's thread pool
    (concurrent.futures, which imports logging) nor xml.etree (only listings and multipart
    uploads parse XML; an error is read without it), each a few ms of every push."""
    env = {**s3_server.environment(), "BACKUP_DIR": f"s3://{s3_server.new_bucket()}/r"}
    if encrypted:
        (tmp_path / "key").write_text(generate_key())
        env["WARROOM_ENCRYPTION_KEY_FILE"] = str(tmp_path / "key")
    first, segment = tmp_path / "000000010000000000000001", tmp_path / "000000010000000000000002"
    for path in (first, segment):
        path.write_bytes(os.urandom(64 * 1024) + bytes(MiB))
    assert wal(["push", str(first)], env).returncode == 0  # an encrypted one lists the keys
    for _ in range(2):  # a new segment, then the same one already archived
        result = wal(["push", str(segment)], env)
        assert result.returncode == 0, result.stderr[-2000:]
        assert not imported(result) & {"concurrent", "logging", "xml", "dataclasses"}


def test_a_wal_push_to_s3_is_idempotent_and_refuses_different_content(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """The record is looked up while the segment is compressed: pushing it again succeeds
    without writing, other content under its name is refused and leaves the archive as it
    was (PostgreSQL keeps the segment and retries)."""
    env = {**s3_server.environment(), "BACKUP_DIR": f"s3://{s3_server.new_bucket()}/r"}
    segment = tmp_path / "000000010000000000000003"
    original = os.urandom(MiB) + bytes(MiB)
    segment.write_bytes(original)
    for _ in range(2):
        result = wal(["push", str(segment)], env)
        assert result.returncode == 0, result.stderr[-2000:]
    segment.write_bytes(os.urandom(2 * MiB))
    refused = wal(["push", str(segment)], env)
    assert refused.returncode == 1
    assert "already archived with different content" in refused.stderr
    fetched = tmp_path / "RECOVERYXLOG"
    assert wal(["fetch", segment.name, str(fetched)], env).returncode == 0
    assert fetched.read_bytes() == original


def test_wal_commands_with_a_profile_use_botocore(s3_server: S3Server, tmp_path: Path) -> None:
    (tmp_path / "credentials").write_text(
        f"[wal]\naws_access_key_id = {ENVIRONMENT['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {ENVIRONMENT['AWS_SECRET_ACCESS_KEY']}\n"
    )
    (tmp_path / "config").write_text("[profile wal]\nregion = us-east-1\n")
    env = {
        "AWS_PROFILE": "wal",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_ENDPOINT_URL": s3_server.endpoint,
        "BACKUP_DIR": f"s3://{s3_server.new_bucket()}/r",
    }
    assert "botocore" in push_fetch_check(env, tmp_path)
