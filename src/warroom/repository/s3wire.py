"""A minimal S3 client for short-lived processes (``warroom wal push``/``fetch``/``check``, run
by PostgreSQL once per WAL segment): botocore's import and client set-up cost about 480 ms a
process, eight times the push itself. :class:`WireClient` speaks S3's REST API over
``http.client`` and signs with AWS Signature V4; it implements exactly the calls, arguments and
answers of botocore's S3 client that :class:`~warroom.repository.s3.S3Storage` uses, so there
is one S3 backend whichever client it is given (the conformance suite runs over both).

It is used only when it can do exactly what botocore would (:func:`wire_client`), that is when
the environment holds static credentials (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
optionally ``AWS_SESSION_TOKEN``), a region (``AWS_REGION`` or ``AWS_DEFAULT_REGION``) and
optionally ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` and the checksum settings
(``AWS_REQUEST_CHECKSUM_CALCULATION``, ``AWS_RESPONSE_CHECKSUM_VALIDATION``), and nothing else
botocore would honour: any other ``AWS_*`` variable (``AWS_PROFILE``, ``AWS_CONFIG_FILE``, web
identity, container credentials, FIPS or dual-stack endpoints ...), an AWS config file
(~/.aws/config: profiles, SSO, endpoint or addressing settings), a proxy variable,
``AWS_CA_BUNDLE`` with an HTTPS endpoint, plain HTTP to anything but loopback, or an endpoint
with a path. Otherwise the caller uses botocore. Addressing is botocore's: path-style on a
configured endpoint, virtual-host style on AWS (path-style for a bucket name that is not one DNS
label chain without dots), HTTPS verified against the CA bundle botocore uses (certifi's when
installed).

Payloads are not SHA-256-signed (``UNSIGNED-PAYLOAD``, as botocore is configured in
:func:`~warroom.repository.s3.new_client`): the caller passes each object's and part's CRC32
(``ChecksumCRC32``, as to botocore), sent as a header, unless
``AWS_REQUEST_CHECKSUM_CALCULATION=when_required`` (``meta.config``, as botocore's client tells
it). A DeleteObjects carries Content-MD5 and a CRC32 whatever the setting, as the botocore client
does (:func:`~warroom.repository.s3.new_client`). Answers' checksums are not validated (each
object's SHA-256 in the manifest is).
Failures raise :class:`S3WireError` (S3's HTTP status, error code and message) or its subclass
:class:`S3WireConnectionError` (no answer: refused, reset, timed out, cut short), which
:func:`~warroom.repository.s3.translate` maps as it maps botocore's errors. Neither the secret,
the session token nor a signature is ever part of an error: they exist only in request headers.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import http.client
import os
import re
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from xml.etree import ElementTree

__all__ = [
    "S3WireConnectionError",
    "S3WireError",
    "WireClient",
    "content_md5",
    "crc32",
    "wire_client",
]

TIMEOUT = 60.0  # seconds to connect and between bytes, as botocore's defaults
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_ALLOWED = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",  # checked below: it changes nothing over plain HTTP
    "AWS_REQUEST_CHECKSUM_CALCULATION",  # checked below, as the next one
    "AWS_RESPONSE_CHECKSUM_VALIDATION",
}
_CHECKSUM_SETTINGS = ("when_supported", "when_required")  # botocore's values, any case
_DNS_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_PROXIES = {"http_proxy", "https_proxy", "all_proxy"}
_ERROR_FIELD = re.compile(rb"<(Code|Message)>([^<]*)</\1>")
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&"))


class S3WireError(Exception):
    """S3 answered ``status`` with error ``code`` (HEAD answers have no body: the code is then
    the status, as botocore reports it) and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


class S3WireConnectionError(S3WireError):
    """No complete answer: the connection failed, was cut or timed out (status 0)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(0, type(exc).__name__, str(exc))


class Credentials(NamedTuple):
    access_key: str
    secret_key: str
    token: str | None


def _is_loopback(host: str) -> bool:
    """``localhost``, ``::1`` or 127.0.0.0/8 (what ``ipaddress`` calls loopback, without its
    import: every ``wal push`` pays for its imports)."""
    return host in ("localhost", "::1") or (
        host.startswith("127.") and host.count(".") == 3 and host.replace(".", "").isdigit()
    )


def wire_client(environ: Mapping[str, str] | None = None) -> WireClient | None:
    """The minimal client for ``environ`` (default: the process's), or None when botocore
    would take something from elsewhere or do something this client does not (see the module
    docstring)."""
    env = os.environ if environ is None else environ
    access_key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not (access_key and secret and region):
        return None
    if any(name.startswith("AWS_") and name not in _ALLOWED for name in env):
        return None
    if any(name.lower() in _PROXIES for name in env):
        return None
    if (Path.home() / ".aws" / "config").exists():
        return None
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.path not in ("", "/") or parts.query or not parts.hostname:
            return None
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            return None
        if parts.scheme not in ("http", "https"):
            return None
        secure = parts.scheme == "https"
    else:
        secure = True
    if secure and env.get("AWS_CA_BUNDLE"):
        return None
    calculation = env.get("AWS_REQUEST_CHECKSUM_CALCULATION", "when_supported").lower()
    validation = env.get("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_supported").lower()
    if calculation not in _CHECKSUM_SETTINGS or validation not in _CHECKSUM_SETTINGS:
        return None  # botocore's error says what is wrong
    credentials = Credentials(access_key, secret, env.get("AWS_SESSION_TOKEN") or None)
    return WireClient(credentials, region, endpoint or None, checksums=calculation)


def content_md5(body: bytes | memoryview) -> str:
    """The Content-MD5 header of ``body``."""
    return base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()


def crc32(body: bytes | memoryview) -> str:
    """The ``x-amz-checksum-crc32`` header (botocore's ``ChecksumCRC32``) of ``body``."""
    return base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()


class _Config(NamedTuple):
    request_checksum_calculation: str  # "when_supported" or "when_required"


class _Meta(NamedTuple):
    config: _Config
    endpoint_url: str


def _signing_key(secret: str, day: str, region: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(
    method: str,
    host: str,
    path: str,
    query: str,
    headers: dict[str, str],
    credentials: Credentials,
    region: str,
    now: datetime,
) -> dict[str, str]:
    """``headers`` plus Host, X-Amz-Date, the session token and the Signature V4
    Authorization of a request to ``host``: ``path`` and ``query`` already URI-encoded, the
    query in key order; ``headers`` must hold ``x-amz-content-sha256``."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    signed = {name.lower(): value.strip() for name, value in headers.items()}
    signed.update({"host": host, "x-amz-date": stamp})
    if credentials.token:
        signed["x-amz-security-token"] = credentials.token
    names = ";".join(sorted(signed))
    canonical = "\n".join(
        [
            method,
            path,
            query,
            *(f"{name}:{signed[name]}" for name in sorted(signed)),
            "",
            names,
            signed["x-amz-content-sha256"],
        ]
    )
    scope = f"{stamp[:8]}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _signing_key(credentials.secret_key, stamp[:8], region)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={names}, Signature={signature}"
    )
    return signed


def _query(arguments: Mapping[str, str | int | None]) -> str:
    return "&".join(
        f"{quote(name, safe='~')}={quote(str(value), safe='~')}"
        for name, value in sorted(arguments.items())
        if value is not None
    )


def _xml(data: bytes) -> ElementTree.Element:
    """The XML document ``data``, without S3's namespace (``xml.etree`` is imported here: only
    listings and multipart uploads need it, not a push's requests)."""
    from xml.etree import ElementTree

    root = ElementTree.fromstring(data)
    for element in root.iter():
        element.tag = element.tag.rpartition("}")[2]  # S3's namespace
    return root


def _text(element: ElementTree.Element, name: str) -> str:
    return element.findtext(name) or ""


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _unescape(text: str) -> str:
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return text


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _error(status: int, data: bytes) -> S3WireError:
    """The error of an answer ``status`` with body ``data``. S3's error document is flat
    (``<Error><Code>...</Code><Message>...</Message>...</Error>``): its two fields are read
    without ``xml.etree``, whose import cost 2 ms of each push that finds no record."""
    fields = {
        name.decode(): _unescape(value.decode(errors="replace"))
        for name, value in _ERROR_FIELD.findall(data)
    }
    if fields:
        return S3WireError(status, fields.get("Code") or str(status), fields.get("Message", ""))
    return S3WireError(status, str(status), http.client.responses.get(status, ""))


class _Pool:
    """Idle connections to one host; a connection is taken for one request and given back
    once its answer is read to the end (a body read halfway closes it instead)."""

    def __init__(self, host: str, port: int | None, secure: bool) -> None:
        self.host, self.port, self.secure = host, port, secure
        name = f"[{host}]" if ":" in host else host
        default = 443 if secure else 80
        self.header = name if port in (None, default) else f"{name}:{port}"  # Host
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def take(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        if not self.secure:
            return http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        import ssl

        try:
            import certifi  # the bundle botocore verifies against

            context = ssl.create_default_context(cafile=certifi.where())
        except ImportError:
            context = ssl.create_default_context()
        return http.client.HTTPSConnection(self.host, self.port, timeout=TIMEOUT, context=context)

    def give(
        self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse
    ) -> None:
        """Keep ``connection`` for the next request, unless ``response`` (read) closes it."""
        if response.will_close:
            connection.close()
            return
        with self._lock:
            self._idle.append(connection)


class _StreamingBody:
    """An object's body as botocore gives it: ``iter_chunks``, ``read``, ``close``."""

    def __init__(
        self,
        response: http.client.HTTPResponse,
        release: Callable[[], None],
        discard: Callable[[], None],
    ) -> None:
        self._response, self._release, self._discard = response, release, discard
        self._open = True

    def _read(self, size: int | None = None) -> bytes:
        try:
            data = self._response.read(size)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise S3WireConnectionError(exc) from exc
        if not data or size is None:
            self._open = False
            self._release()
        return data

    def iter_chunks(self, chunk_size: int) -> Iterator[bytes]:
        while self._open:
            data = self._read(chunk_size)
            if data:
                yield data

    def read(self) -> bytes:
        return self._read()

    def close(self) -> None:
        if self._open:
            self._open = False
            self._discard()


class _Answer(NamedTuple):
    """A successful answer whose body is still to be read, on the connection it came on."""

    pool: _Pool
    connection: http.client.HTTPConnection
    response: http.client.HTTPResponse

    def read(self) -> tuple[http.client.HTTPResponse, bytes]:
        """The answer and its whole body; the connection goes back to the pool."""
        try:
            data = self.response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.connection.close()
            raise S3WireConnectionError(exc) from exc
        self.pool.give(self.connection, self.response)
        return self.response, data

    def stream(self) -> _StreamingBody:
        """The body as botocore streams it; the connection goes back once it is read."""
        return _StreamingBody(
            self.response,
            lambda: self.pool.give(self.connection, self.response),
            self.connection.close,
        )


class _Listing(NamedTuple):
    """One S3 listing: its query, the element of each item and where botocore puts the items,
    each item's fields and how they are parsed, and the markers of the next page (the answer's
    field, the next request's parameter)."""

    query: dict[str, str | int | None]
    element: str
    key: str
    fields: dict[str, Callable[[str], Any]]
    markers: dict[str, str]


_LISTINGS = {
    "list_objects_v2": _Listing(
        {"list-type": 2},
        "Contents",
        "Contents",
        {"Key": str, "Size": int, "LastModified": _time, "ETag": str},
        {"NextContinuationToken": "continuation-token"},
    ),
    "list_multipart_uploads": _Listing(
        {"uploads": ""},
        "Upload",
        "Uploads",
        {"Key": str, "UploadId": str, "Initiated": _time},
        {"NextKeyMarker": "key-marker", "NextUploadIdMarker": "upload-id-marker"},
    ),
}


class _Paginator:
    """botocore's paginator of one listing: ``paginate(**arguments)`` yields its pages."""

    def __init__(self, pages: Callable[..., Iterator[dict[str, Any]]]) -> None:
        self.paginate = pages


class WireClient:
    """The subset of botocore's S3 client that S3Storage calls, same arguments and answers, and
    ``meta.config.request_checksum_calculation`` (``checksums``) and ``meta.endpoint_url``."""

    def __init__(
        self,
        credentials: Credentials,
        region: str,
        endpoint: str | None,
        *,
        checksums: str = "when_supported",
    ) -> None:
        self._credentials, self._region = credentials, region
        self.meta = _Meta(_Config(checksums), endpoint or f"https://s3.{region}.amazonaws.com")
        self._endpoint: _Pool | None = None  # None: AWS, by region
        if endpoint is not None:
            parts = urlsplit(endpoint)
            host = parts.hostname or ""  # checked by wire_client
            self._endpoint = _Pool(host, parts.port, parts.scheme == "https")
        self._pools: dict[str, _Pool] = {}
        self._lock = threading.Lock()

    def _route(self, bucket: str, key: str) -> tuple[_Pool, str]:
        """The connections to use and the encoded path of ``key`` in ``bucket``."""
        encoded = quote(key, safe="/~")
        if self._endpoint is not None:  # path-style, as botocore addresses a set endpoint
            return self._endpoint, f"/{quote(bucket, safe='~')}/{encoded}"
        aws = (
            "s3.amazonaws.com"
            if self._region == "us-east-1"
            else f"s3.{self._region}.amazonaws.com"
        )
        virtual = _DNS_BUCKET.fullmatch(bucket) is not None  # botocore's rule over HTTPS
        host = f"{bucket}.{aws}" if virtual else aws
        with self._lock:
            pool = self._pools.setdefault(host, _Pool(host, None, True))
        return pool, f"/{encoded}" if virtual else f"/{quote(bucket, safe='~')}/{encoded}"

    def _request(
        self,
        method: str,
        bucket: str,
        key: str = "",
        query: Mapping[str, str | int | None] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | memoryview = b"",
        *,
        signed_payload: bool = True,
    ) -> _Answer:
        """Send one request; its successful answer, body unread (an error answer is read,
        its connection given back, and raised)."""
        pool, path = self._route(bucket, key)
        text = _query(query or {})
        sent = dict(headers or {})
        sent["x-amz-content-sha256"] = (
            hashlib.sha256(body).hexdigest()
            if signed_payload and body
            else (EMPTY_SHA256 if signed_payload else "UNSIGNED-PAYLOAD")
        )
        if body or method in ("PUT", "POST"):
            sent["content-length"] = str(len(body))
        now = datetime.now(UTC)
        sent = sign(method, pool.header, path, text, sent, self._credentials, self._region, now)
        connection = pool.take()
        try:
            connection.request(method, f"{path}?{text}" if text else path, body or None, sent)
            response = connection.getresponse()
            if response.status < 300:
                return _Answer(pool, connection, response)
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise S3WireConnectionError(exc) from exc
        pool.give(connection, response)
        raise _error(response.status, data)

    @staticmethod
    def _payload(
        body: bytes | BytesIO, checksum: str | None
    ) -> tuple[bytes | memoryview, dict[str, str]]:
        """A part's bytes (a BytesIO's without a copy) and their checksum header, if any."""
        data = body.getbuffer() if isinstance(body, BytesIO) else body
        return data, {} if checksum is None else {"x-amz-checksum-crc32": checksum}

    def put_object(
        self,
        *,
        Bucket: str,
        Key: str,
        Body: bytes | BytesIO,
        IfMatch: str | None = None,
        IfNoneMatch: str | None = None,
        ChecksumCRC32: str | None = None,
    ) -> dict[str, Any]:
        data, headers = self._payload(Body, ChecksumCRC32)
        if IfMatch is not None:
            headers["if-match"] = IfMatch
        if IfNoneMatch is not None:
            headers["if-none-match"] = IfNoneMatch
        response, _ = self._request(
            "PUT", Bucket, Key, None, headers, data, signed_payload=False
        ).read()
        return {"ETag": response.getheader("ETag", "")}

    def create_multipart_upload(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        _, data = self._request("POST", Bucket, Key, {"uploads": ""}).read()
        return {"UploadId": _text(_xml(data), "UploadId")}

    def upload_part(
        self,
        *,
        Bucket: str,
        Key: str,
        UploadId: str,
        PartNumber: int,
        Body: bytes | BytesIO,
        ChecksumCRC32: str | None = None,
    ) -> dict[str, Any]:
        data, headers = self._payload(Body, ChecksumCRC32)
        query: dict[str, str | int | None] = {"partNumber": PartNumber, "uploadId": UploadId}
        response, _ = self._request(
            "PUT", Bucket, Key, query, headers, data, signed_payload=False
        ).read()
        return {"ETag": response.getheader("ETag", "")}

    def complete_multipart_upload(
        self, *, Bucket: str, Key: str, UploadId: str, MultipartUpload: dict[str, Any]
    ) -> dict[str, Any]:
        parts = "".join(
            f"<Part><ETag>{_escape(part['ETag'])}</ETag>"
            f"<PartNumber>{part['PartNumber']}</PartNumber></Part>"
            for part in MultipartUpload["Parts"]
        )
        body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
        _, data = self._request("POST", Bucket, Key, {"uploadId": UploadId}, None, body).read()
        root = _xml(data)
        if root.tag == "Error":  # S3 may fail a completion after answering 200
            raise S3WireError(200, _text(root, "Code"), _text(root, "Message"))
        return {"ETag": _text(root, "ETag")}

    def abort_multipart_upload(self, *, Bucket: str, Key: str, UploadId: str) -> dict[str, Any]:
        self._request("DELETE", Bucket, Key, {"uploadId": UploadId}).read()
        return {}

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        answer = self._request("GET", Bucket, Key)
        response, body = answer.response, answer.stream()
        return {
            "Body": body,
            "ETag": response.getheader("ETag", ""),
            "ContentLength": int(response.getheader("Content-Length", "0")),
            "LastModified": parsedate_to_datetime(response.getheader("Last-Modified", "")),
        }

    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        response, _ = self._request("HEAD", Bucket, Key).read()
        return {
            "ETag": response.getheader("ETag", ""),
            "ContentLength": int(response.getheader("Content-Length", "0")),
            "LastModified": parsedate_to_datetime(response.getheader("Last-Modified", "")),
        }

    def delete_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        self._request("DELETE", Bucket, Key).read()
        return {}

    def delete_objects(self, *, Bucket: str, Delete: dict[str, Any]) -> dict[str, Any]:
        objects = "".join(
            f"<Object><Key>{_escape(item['Key'])}</Key></Object>" for item in Delete["Objects"]
        )
        quiet = "true" if Delete.get("Quiet") else "false"
        body = f"<Delete><Quiet>{quiet}</Quiet>{objects}</Delete>".encode()
        headers = {"content-md5": content_md5(body), "x-amz-checksum-crc32": crc32(body)}
        _, data = self._request("POST", Bucket, "", {"delete": ""}, headers, body).read()
        errors = [
            {"Key": _text(item, "Key"), "Code": _text(item, "Code")}
            for item in _xml(data).findall("Error")
        ]
        return {"Errors": errors} if errors else {}

    def get_paginator(self, operation: str) -> _Paginator:
        if operation not in _LISTINGS:
            raise ValueError(f"no paginator {operation!r} in the minimal S3 client")
        return _Paginator(functools.partial(self._pages, _LISTINGS[operation]))

    def _list(self, bucket: str, query: dict[str, str | int | None]) -> ElementTree.Element:
        _, data = self._request("GET", bucket, "", query).read()
        return _xml(data)

    @staticmethod
    def _prefixes(root: ElementTree.Element) -> list[dict[str, Any]]:
        return [{"Prefix": _text(item, "Prefix")} for item in root.findall("CommonPrefixes")]

    def _pages(
        self, listing: _Listing, *, Bucket: str, Prefix: str = "", Delimiter: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The pages of ``listing`` under ``Prefix``, as botocore's paginator yields them."""
        query: dict[str, str | int | None] = {
            **listing.query,
            "prefix": Prefix,
            "delimiter": Delimiter,
        }
        while True:
            root = self._list(Bucket, query)
            page: dict[str, Any] = {}
            items = [
                {name: parse(_text(item, name)) for name, parse in listing.fields.items()}
                for item in root.findall(listing.element)
            ]
            if items:
                page[listing.key] = items
            if prefixes := self._prefixes(root):
                page["CommonPrefixes"] = prefixes
            yield page
            markers = {parameter: _text(root, name) for name, parameter in listing.markers.items()}
            if _text(root, "IsTruncated") != "true" or not any(markers.values()):
                return
            query.update(markers)
