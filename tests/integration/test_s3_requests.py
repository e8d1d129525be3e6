"""What both S3 clients (botocore's and the minimal one) send, recorded by a real HTTP proxy in
front of moto's server: the headers MinIO, Cloudflare R2 and Ceph RGW accept or require, chosen
through the standard AWS settings only (see the README's S3 section)."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

from tests.s3server import S3Server, Sent, recording_proxy, self_signed
from warroom.repository.s3 import S3Storage
from warroom.repository.s3wire import wire_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1 << 20
CLIENTS = ["botocore", "wire"]


@pytest.fixture
def proxied(s3_server: S3Server) -> Iterator[tuple[S3Server, list[Sent]]]:
    with recording_proxy(s3_server) as recorded:
        yield recorded


def storage(
    server: S3Server, client: str, monkeypatch: pytest.MonkeyPatch, **settings: str
) -> S3Storage:
    """S3Storage over ``client`` with ``server``'s environment and ``settings`` added."""
    environment = {**server.environment(), **settings}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    wire = wire_client(environment) if client == "wire" else None
    assert wire is not None or client == "botocore"
    bucket = server.new_bucket()
    return S3Storage(bucket, "r", part_size=5 * MiB, client=cast("S3Client", wire))


def crc32(body: bytes) -> str:
    return base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()


def writes(sent: list[Sent]) -> list[Sent]:
    """The PutObject and UploadPart requests (a key after the bucket: no CreateBucket)."""
    return [request for request in sent if request.method == "PUT" and "/r/" in request.path]


@pytest.mark.parametrize("client", CLIENTS)
def test_objects_and_parts_carry_a_crc32_by_default(
    proxied: tuple[S3Server, list[Sent]], monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    server, sent = proxied
    s3 = storage(server, client, monkeypatch)
    s3.put("small", [b"hello"])
    s3.put("big", [os.urandom(6 * MiB)])  # two parts
    assert len(writes(sent)) == 3
    for request in writes(sent):
        assert request.headers["x-amz-checksum-crc32"] == crc32(request.body)
        assert request.headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"


def test_over_https_the_crc32_is_a_header_of_a_body_with_a_length(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore alone would send its checksum over HTTPS as an aws-chunked trailer of a body
    without Content-Length, which Ceph RGW releases refuse (MissingContentLength): the backend
    passes its own CRC32, which botocore sends as a header, as over HTTP and as the minimal
    client does (which over HTTPS with a CA bundle leaves the work to botocore)."""
    pem = self_signed(tmp_path)
    with recording_proxy(s3_server, tls=pem) as (server, sent):
        s3 = storage(server, "botocore", monkeypatch, AWS_CA_BUNDLE=str(pem))
        s3.put("small", [b"hello"])
        s3.put("big", [os.urandom(6 * MiB)])
        assert b"".join(s3.get("small")) == b"hello"
    assert len(writes(sent)) == 3
    for request in writes(sent):
        assert "content-encoding" not in request.headers
        assert request.headers["content-length"] == str(len(request.body))
        assert request.headers["x-amz-checksum-crc32"] == crc32(request.body)
        assert request.headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("value", ["when_required", "WHEN_REQUIRED"])
def test_when_required_sends_no_checksum_on_writes(
    proxied: tuple[S3Server, list[Sent]],
    monkeypatch: pytest.MonkeyPatch,
    client: str,
    value: str,
) -> None:
    """AWS_REQUEST_CHECKSUM_CALCULATION / AWS_RESPONSE_CHECKSUM_VALIDATION=when_required, for
    servers that refuse botocore's default checksums: the minimal client honours them too."""
    server, sent = proxied
    settings = {
        "AWS_REQUEST_CHECKSUM_CALCULATION": value,
        "AWS_RESPONSE_CHECKSUM_VALIDATION": value,
    }
    s3 = storage(server, client, monkeypatch, **settings)
    s3.put("big", [os.urandom(6 * MiB)])
    assert b"".join(s3.get("big")) and len(writes(sent)) == 2
    for request in sent:
        assert not [name for name in request.headers if name.startswith("x-amz-checksum")]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("calculation", ["when_supported", "when_required"])
def test_delete_objects_carries_content_md5(
    proxied: tuple[S3Server, list[Sent]],
    monkeypatch: pytest.MonkeyPatch,
    client: str,
    calculation: str,
) -> None:
    """Older MinIO releases refuse a DeleteObjects without Content-MD5 (MissingContentMD5),
    which botocore 1.36+ no longer sends; both clients send it, and botocore's CRC32."""
    server, sent = proxied
    s3 = storage(server, client, monkeypatch, AWS_REQUEST_CHECKSUM_CALCULATION=calculation)
    for name in ("d/a", "d/b"):
        s3.put(name, [b"x"])
    s3.delete_prefix("d")
    assert list(s3.list()) == []
    [delete] = [request for request in sent if "?delete" in request.path]
    md5 = base64.b64encode(hashlib.md5(delete.body, usedforsecurity=False).digest()).decode()
    assert delete.headers["content-md5"] == md5
    assert delete.headers["x-amz-checksum-crc32"] == crc32(delete.body)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_configured_endpoint_is_addressed_path_style(
    proxied: tuple[S3Server, list[Sent]], monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    """What MinIO and Ceph RGW answer without a DNS name for buckets; virtual-host style is
    botocore's config file setting (s3 addressing_style), which only botocore reads."""
    server, sent = proxied
    named = S3Server(server.endpoint.replace("127.0.0.1", "localhost"), server.pid)
    s3 = storage(named, client, monkeypatch)
    s3.put("k", [b"v"])
    assert b"".join(s3.get("k")) == b"v"
    assert all(request.path.startswith(f"/{s3.bucket}") for request in sent)
    assert {request.headers["host"] for request in sent} == {named.endpoint[len("http://") :]}
