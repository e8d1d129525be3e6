"""The minimal S3 client's pure parts: Signature V4 (AWS's own published example) and which
environments it takes instead of botocore (only those where it does exactly what botocore
would)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from warroom.repository.s3wire import (
    EMPTY_SHA256,
    Credentials,
    WireClient,
    _error,
    sign,
    wire_client,
)

STATIC = {
    "AWS_ACCESS_KEY_ID": "AKIATESTONLY0000KEY1",
    "AWS_SECRET_ACCESS_KEY": "test-secret-never-printed",
    "AWS_REGION": "eu-west-1",
}


def test_signature_v4_of_aws_s3_example() -> None:
    """The GetObject example of AWS's S3 Signature V4 documentation ("Example: GET Object")."""
    headers = sign(
        "GET",
        "examplebucket.s3.amazonaws.com",
        "/test.txt",
        "",
        {"Range": "bytes=0-9", "x-amz-content-sha256": EMPTY_SHA256},
        Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None),
        "us-east-1",
        datetime(2013, 5, 24, tzinfo=UTC),
    )
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


@pytest.fixture(autouse=True)
def no_aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    "extra",
    [
        {"AWS_PROFILE": "prod"},
        {"AWS_DEFAULT_PROFILE": "prod"},
        {"AWS_CONFIG_FILE": "/etc/aws/config"},
        {"AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token"},
        {"AWS_USE_FIPS_ENDPOINT": "true"},
        {"HTTPS_PROXY": "http://proxy:3128"},
        {"AWS_CA_BUNDLE": "/etc/ssl/private-ca.pem"},  # over HTTPS: botocore's to honour
        {"AWS_ENDPOINT_URL": "http://minio.internal:9000"},  # plain HTTP off loopback
        {"AWS_ENDPOINT_URL": "http://127.0.0.1.nip.io:9000"},
        {"AWS_ENDPOINT_URL": "https://gateway.internal/s3"},  # an endpoint with a path
        {"AWS_REGION": "", "AWS_DEFAULT_REGION": ""},  # botocore would find the region
        {"AWS_SECRET_ACCESS_KEY": ""},  # credentials from elsewhere
        {"AWS_REQUEST_CHECKSUM_CALCULATION": "never"},  # botocore's error says what is wrong
        {"AWS_RESPONSE_CHECKSUM_VALIDATION": "sometimes"},
    ],
)
def test_botocore_whenever_the_environment_asks_for_more(extra: dict[str, str]) -> None:
    assert wire_client({**STATIC, **extra}) is None


def test_botocore_when_an_aws_config_file_exists(no_aws_config: Path) -> None:
    assert wire_client(STATIC) is not None
    (no_aws_config / ".aws").mkdir()
    (no_aws_config / ".aws" / "config").write_text("[default]\ns3 =\n  addressing_style = path\n")
    assert wire_client(STATIC) is None


def test_static_credentials_on_loopback_or_aws() -> None:
    loopback = {**STATIC, "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}
    assert wire_client({**loopback, "AWS_CA_BUNDLE": "/etc/ssl/ca.pem"}) is not None
    assert wire_client({**STATIC, "AWS_SESSION_TOKEN": "token"}) is not None


def route(client: WireClient, bucket: str) -> tuple[str, str]:
    pool, path = client._route(bucket, "wal/a b+c")
    return pool.header, path


def test_addressing_is_botocores() -> None:
    credentials = Credentials("AKIATESTONLY0000KEY1", "secret", None)
    endpoint = WireClient(credentials, "eu-west-1", "http://127.0.0.1:9000")
    assert route(endpoint, "bucket") == ("127.0.0.1:9000", "/bucket/wal/a%20b%2Bc")
    aws = WireClient(credentials, "eu-west-1", None)
    assert route(aws, "bucket") == ("bucket.s3.eu-west-1.amazonaws.com", "/wal/a%20b%2Bc")
    assert route(aws, "my.bucket") == ("s3.eu-west-1.amazonaws.com", "/my.bucket/wal/a%20b%2Bc")
    east = WireClient(credentials, "us-east-1", None)
    assert route(east, "bucket")[0] == "bucket.s3.amazonaws.com"


def test_error_documents_are_read_without_xml_etree() -> None:
    """S3's error document is flat: its code and message (entities decoded) are read with a
    regular expression, and anything else gives the HTTP status."""
    document = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
        b"<Message>The key &lt;k&gt; &amp; more does not exist</Message><Key>k</Key></Error>"
    )
    error = _error(404, document)
    assert (error.status, error.code, error.message) == (
        404,
        "NoSuchKey",
        "The key <k> & more does not exist",
    )
    assert _error(400, b"<Error><Message>no code</Message></Error>").code == "400"
    for body in (b"", b"not xml"):
        error = _error(503, body)
        assert (error.code, error.message) == ("503", "Service Unavailable")
