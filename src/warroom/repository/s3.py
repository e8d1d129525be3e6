"""The S3 backend: ``s3://bucket/prefix`` on AWS S3 or any S3-compatible server (MinIO,
Cloudflare R2, Ceph, moto).

The endpoint, region and credentials come from the standard AWS settings, read by botocore:
``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``), ``AWS_REGION``, ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and the shared config and
credentials files. None of it is ever printed: :attr:`S3Storage.location` is the URL, and errors
carry S3's error code and message only, with anything shaped like an access key id masked.

Writes: an object of one part is one ``PutObject``; a larger one is a multipart upload whose
parts (the first one too) are sent in parallel as they are cut, visible only once
``CompleteMultipartUpload`` succeeds, and aborted on any failure; a killed writer's upload is
what :meth:`S3Storage.sweep_uploads` aborts. The objects written at once share
``parallel_parts`` upload slots, and a part is held only within its slot, so their parts in
memory are at most ``parallel_parts x part_size`` (32 MiB by default), whatever the number of
writers, while each object is within its first ``parts_per_tier`` parts (1,000 x 8 MiB).

S3 takes 10,000 parts per object, so a larger object's parts double in size every 1,000 parts
(16 MiB, 32 MiB ... 4 GiB: 5 TiB, S3's largest object, within 9,282 parts; on R2, which
refuses parts of different sizes, they keep one size: 78 GiB at most) and fewer of them are
in flight: an upload holds at most ``max(32 MiB, two parts)``, one sent while the next is cut
(2 x 64 MiB for a 100 GiB object, 2 x 1 GiB for 1 TiB, 2 x 4 GiB for 5 TiB). A part that
would take an object past 10,000 parts, 5 GiB parts or 5 TiB is refused before it is sent,
with a permanent StorageError, and the upload is aborted.

botocore's own retries are off: :class:`~warroom.repository.wrappers.RetryStorage`, which
:func:`~warroom.repository.storage.open_storage` puts around this backend, is the one retry
policy. Timeouts, throttling and 5xx answers (but 501 Not Implemented) are
TransientStorageError; a missing key is NotFoundError; missing credentials are
ConfigurationError; anything else is StorageError.

The client is botocore's, or for a short-lived process (``wal push``, see :func:`new_client`)
the minimal one of :mod:`warroom.repository.s3wire` when the environment allows it: the same
calls, answers and errors, so this is the one S3 backend. botocore is imported only when its
client is made.
"""

from __future__ import annotations

import builtins
import io
import re
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypedDict, cast
from urllib.parse import urlsplit

from warroom.errors import (
    ConfigurationError,
    NotFoundError,
    StorageError,
    TransientStorageError,
    WarroomError,
)
from warroom.repository.s3wire import (
    S3WireConnectionError,
    S3WireError,
    content_md5,
    crc32,
    wire_client,
)
from warroom.repository.storage import MiB, ObjectInfo, Part, PartWiseWrites, check_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

__all__ = ["S3Storage"]

READ_CHUNK = MiB
_TRANSIENT_CODES = {
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
}
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
_NOT_IMPLEMENTED = 501  # a call the server lacks (R2, Ceph RGW, MinIO): retrying cannot help
MAX_PARTS = 10_000  # S3's limits per object (AWS, MinIO, Ceph RGW and R2 alike)
MAX_PART_SIZE = 5 << 30
MAX_OBJECT_SIZE = 5 << 40
_EQUAL_PARTS_ONLY = ".r2.cloudflarestorage.com"  # R2 refuses parts of different sizes
_ACCESS_KEY_ID = re.compile(r"\b(AKIA|ASIA|AIDA)[A-Z0-9]{12,}\b")


class Checksum(TypedDict, total=False):
    """The checksum argument of a PutObject or UploadPart (see :meth:`S3Storage.checksum`)."""

    ChecksumCRC32: str


def _mask(text: str) -> str:
    return _ACCESS_KEY_ID.sub(lambda m: m.group(1) + "…", text)


def _client_errors() -> tuple[type[Exception], ...]:
    """What an S3 client's calls raise: the minimal client's error, and botocore's once
    botocore is loaded (none of them can be raised before; a wal push never loads it)."""
    boto = sys.modules.get("botocore.exceptions")
    if boto is None:
        return (S3WireError,)
    return (S3WireError, boto.BotoCoreError, boto.ClientError)


def _answer(exc: Exception) -> tuple[str, int, str] | None:
    """S3's error code, HTTP status and message in ``exc``, or None when S3 did not answer."""
    if isinstance(exc, S3WireError) and not isinstance(exc, S3WireConnectionError):
        return exc.code, exc.status, exc.message
    boto = sys.modules.get("botocore.exceptions")
    if boto is not None and isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return str(error.get("Code", "")), status, str(error.get("Message", ""))
    return None


def _no_answer(exc: Exception) -> str | None:
    """What went wrong when ``exc`` is a connection that failed, was cut short or timed out;
    None for any other failure."""
    if isinstance(exc, S3WireConnectionError):
        return str(exc)  # the socket's error: "ConnectionRefusedError: [Errno 111] ..."
    boto = sys.modules.get("botocore.exceptions")
    failed = boto is not None and isinstance(
        exc,
        boto.ConnectionError
        | boto.HTTPClientError
        | boto.ResponseStreamingError
        | boto.IncompleteReadError,
    )
    return type(exc).__name__ if failed else None


def translate(action: str, where: str, exc: Exception) -> WarroomError:
    """Our error for a failure of an S3 client (botocore's or the minimal one) to ``action``
    ``where`` (see the module docstring)."""
    boto = sys.modules.get("botocore.exceptions")
    if boto is not None and isinstance(exc, boto.NoCredentialsError):
        return ConfigurationError(
            f"no AWS credentials to {action} {where}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
        )
    answer = _answer(exc)
    if answer is not None:
        code, status, text = answer
        code = code or "error"
        message = _mask(f"cannot {action} {where}: {code}: {text}".strip())
        if code in _NOT_FOUND_CODES:
            return NotFoundError(message, key=where)
        if code in _TRANSIENT_CODES or (status >= 500 and status != _NOT_IMPLEMENTED):
            return TransientStorageError(message, location=where)
        return StorageError(message, location=where)
    failure = _no_answer(exc)
    if failure is not None:
        return TransientStorageError(_mask(f"cannot {action} {where}: {failure}"), location=where)
    return StorageError(_mask(f"cannot {action} {where}: {exc}"), location=where)


def new_client(parallel_parts: int, *, short_lived: bool = False) -> S3Client:
    """An S3 client. ``short_lived`` (a process that makes a few requests, such as ``wal
    push``): the minimal client of :mod:`warroom.repository.s3wire` when the environment lets
    it do exactly what botocore would, which starts in milliseconds instead of half a second.

    Otherwise botocore's (boto3's session would load s3transfer too, a third of the start-up
    of ``wal push``). No retries of its own (see the module docstring); connections enough
    for the parts of the objects written at once. The payload is not SHA-256-signed over plain
    HTTP either, as it is not over HTTPS: each object and part carries a CRC32 checksum, which
    S3 checks (:meth:`S3Storage.checksum`), and every object its own SHA-256 in the manifest
    (hashing each part twice more cost a quarter of the client's CPU of an upload).
    ``AWS_REQUEST_CHECKSUM_CALCULATION`` / ``AWS_RESPONSE_CHECKSUM_VALIDATION`` (or the config
    file's keys) turn those checksums off for servers that refuse them. A DeleteObjects also
    carries Content-MD5, which botocore 1.36 and later no longer send and which older MinIO
    releases require."""
    if short_lived:
        wire = wire_client()
        if wire is not None:
            # The subset of S3Client's methods S3Storage calls (the conformance suite runs
            # S3Storage over both clients).
            return cast("S3Client", wire)
    import botocore.session
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": 1},
        max_pool_connections=max(10, parallel_parts * 4),
        s3={"payload_signing_enabled": False},
    )
    client = botocore.session.get_session().create_client("s3", config=config)
    client.meta.events.register("before-call.s3.DeleteObjects", _add_content_md5)
    return cast("S3Client", client)


def _add_content_md5(params: dict[str, Any], **_: Any) -> None:
    """botocore's hook: the Content-MD5 of a request whose body is serialized (DeleteObjects)."""
    params["headers"]["Content-MD5"] = content_md5(params["body"])


class _BodyChunks:
    """An object's body in chunks; closed when exhausted or by ``close``."""

    def __init__(self, body: Any, where: str) -> None:
        self._body = body
        self._chunks = body.iter_chunks(READ_CHUNK)
        self._where = where

    def __iter__(self) -> _BodyChunks:
        return self

    def __next__(self) -> bytes:
        try:
            chunk: bytes = next(self._chunks)
        except StopIteration:
            self.close()
            raise
        except _client_errors() as exc:
            self.close()
            raise translate("read", self._where, exc) from exc
        return chunk

    def close(self) -> None:
        self._body.close()


def _in_units(size: int) -> str:
    """``size`` in the largest binary unit that divides it: 5 TiB, 12 MiB, 100 bytes."""
    for unit, name in ((40, "TiB"), (30, "GiB"), (20, "MiB")):
        if size and size % (1 << unit) == 0:
            return f"{size >> unit} {name}"
    return f"{size} bytes"


def _body(data: bytes) -> io.BytesIO:
    """A part as a request body: botocore copies a ``bytes`` body into one buffer with the
    request's headers (a second copy of every part in flight); a file is sent as it is read
    (``BytesIO`` shares the bytes it is made from)."""
    return io.BytesIO(data)


class _MultipartUpload:
    """A part 1 that is also the ``last`` is kept for a single PutObject at commit (which
    :func:`~warroom.repository.storage.write_stream` calls next); any other part starts (or
    joins) a multipart upload and is sent at once, within its upload slot."""

    def __init__(self, storage: S3Storage, key: str) -> None:
        self._storage, self._key = storage, storage.object_key(key)
        self._where = f"s3://{storage.bucket}/{self._key}"
        self._first: bytes | None = None
        self._upload_id: str | None = None
        self._etags: dict[int, str] = {}
        self._lock = threading.Lock()

    def _fail(self, action: str, exc: Exception) -> NoReturn:
        raise translate(action, self._where, exc) from exc

    def _upload_id_now(self) -> str:
        with self._lock:
            if self._upload_id is None:
                try:
                    answer = self._storage.client.create_multipart_upload(
                        Bucket=self._storage.bucket, Key=self._key
                    )
                except _client_errors() as exc:
                    self._fail("start an upload to", exc)
                self._upload_id = answer["UploadId"]
            return self._upload_id

    def _send(self, number: int, data: bytes) -> None:
        upload_id = self._upload_id_now()
        try:
            answer = self._storage.client.upload_part(
                Bucket=self._storage.bucket,
                Key=self._key,
                UploadId=upload_id,
                PartNumber=number,
                Body=_body(data),
                **self._storage.checksum(data),
            )
        except _client_errors() as exc:
            self._fail(f"upload part {number} of", exc)
        with self._lock:
            self._etags[number] = answer["ETag"]

    def _check_limits(self, part: Part) -> None:
        """A permanent StorageError if ``part`` would take the object past S3's limits."""
        storage, end = self._storage, part.offset + len(part.data)
        if part.number > storage.max_parts:
            limit = f"{storage.max_parts:,} parts"
        elif len(part.data) > MAX_PART_SIZE:
            limit = f"parts of {_in_units(MAX_PART_SIZE)}"
        elif end > storage.max_object_size:
            limit = _in_units(storage.max_object_size)
        else:
            return
        raise StorageError(
            f"cannot write {self._where}: part {part.number} would end at byte {end}, past "
            f"S3's limit of {limit} per object; the upload is aborted",
            location=self._where,
        )

    def write(self, part: Part) -> None:
        self._check_limits(part)
        if part.number == 1 and part.last:
            self._first = part.data
        else:
            self._send(part.number, part.data)

    def commit(self, size: int, parts: int) -> None:
        client, bucket = self._storage.client, self._storage.bucket
        try:
            if self._upload_id is None:
                first = self._first or b""
                client.put_object(
                    Bucket=bucket, Key=self._key, Body=_body(first), **self._storage.checksum(first)
                )
                return  # _first kept: a retried commit sends it again
            client.complete_multipart_upload(
                Bucket=bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={
                    "Parts": [
                        {"ETag": self._etags[number], "PartNumber": number}
                        for number in range(1, parts + 1)
                    ]
                },
            )
        except _client_errors() as exc:
            self._fail("write", exc)

    def abort(self) -> None:
        self._first = None
        if self._upload_id is None:
            return
        try:
            self._storage.client.abort_multipart_upload(
                Bucket=self._storage.bucket, Key=self._key, UploadId=self._upload_id
            )
        except _client_errors():
            pass  # left for sweep_uploads


class S3Storage(PartWiseWrites):
    """A repository under ``prefix`` in an S3 bucket. ``max_parts`` and ``max_object_size`` are
    S3's limits, which an upload is refused beyond; on Cloudflare R2, which refuses parts of
    different sizes, ``parts_per_tier`` is ``max_parts`` (parts of one size, so objects of at
    most ``max_parts x part_size``)."""

    max_parts, max_object_size = MAX_PARTS, MAX_OBJECT_SIZE

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        part_size: int = 8 * MiB,
        parallel_parts: int = 4,
        parts_per_tier: int = 1000,
        client: S3Client | None = None,
        short_lived: bool = False,
    ) -> None:
        if part_size < 5 * MiB:
            raise ConfigurationError("S3 multipart parts must be at least 5 MiB")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size, self.parallel_parts = part_size, parallel_parts
        # Every object written at once shares the parts in flight (a backup writes several).
        self.upload_slots: threading.Semaphore | None = threading.BoundedSemaphore(parallel_parts)
        self.client: S3Client = client or new_client(parallel_parts, short_lived=short_lived)
        host = urlsplit(self.client.meta.endpoint_url).hostname or ""
        # On R2 every part but the last has one size: objects stop at max_parts of part_size.
        self.parts_per_tier = self.max_parts if host.endswith(_EQUAL_PARTS_ONLY) else parts_per_tier
        setting = self.client.meta.config.request_checksum_calculation  # type: ignore[attr-defined]
        self._checksums = setting == "when_supported"  # botocore's stubs predate the setting

    @classmethod
    def from_url(cls, url: str, *, short_lived: bool = False) -> S3Storage:
        """``s3://bucket[/prefix]``; ConfigurationError when there is no bucket. ``short_lived``:
        see :func:`new_client`."""
        parts = urlsplit(url)
        if not parts.netloc or "@" in parts.netloc:
            raise ConfigurationError(
                "an S3 repository is s3://bucket/prefix; credentials come from the AWS "
                "settings (AWS_ACCESS_KEY_ID, AWS_PROFILE ...), never from the URL"
            )
        return cls(parts.netloc, parts.path, short_lived=short_lived)

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _base(self, prefix: str) -> str:
        return f"{self.prefix}/{prefix}" if self.prefix else prefix

    def _where(self, key: str) -> str:
        return f"{self.location}/{key}"

    def checksum(self, data: bytes) -> Checksum:
        """The checksum argument of a PutObject or UploadPart of ``data``: its CRC32, sent as a
        header with the body's length, unless the checksum setting is ``when_required``.
        botocore would send its own over HTTPS as an aws-chunked trailer, without a
        Content-Length, which Ceph RGW releases refuse (MissingContentLength)."""
        return Checksum(ChecksumCRC32=crc32(data)) if self._checksums else Checksum()

    def begin(self, key: str) -> _MultipartUpload:
        return _MultipartUpload(self, key)

    def get(self, key: str) -> _BodyChunks:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
        except _client_errors() as exc:
            raise translate("read", self._where(key), exc) from exc
        return _BodyChunks(answer["Body"], self._where(key))

    def stat(self, key: str) -> ObjectInfo:
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except _client_errors() as exc:
            raise translate("read", self._where(key), exc) from exc
        return ObjectInfo(key, answer["ContentLength"], answer["LastModified"])

    def _paginate(self, operation: str, action: str, **arguments: Any) -> Iterator[Any]:
        try:
            yield from self.client.get_paginator(operation).paginate(  # type: ignore[call-overload]
                Bucket=self.bucket, **arguments
            )
        except _client_errors() as exc:
            raise translate(action, self.location, exc) from exc

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for page in self._paginate("list_objects_v2", "list", Prefix=self._base(prefix)):
            for item in page.get("Contents", []):
                yield ObjectInfo(self._relative(item["Key"]), item["Size"], item["LastModified"])

    def _uploads(self, prefix: str, **arguments: Any) -> Iterator[Any]:
        yield from self._paginate(
            "list_multipart_uploads", "list uploads in", Prefix=self._base(prefix), **arguments
        )

    def children(self, prefix: str) -> builtins.list[str]:
        base = self._base(prefix.rstrip("/") + "/")
        names: set[str] = set()
        pages = [
            *self._paginate("list_objects_v2", "list", Prefix=base, Delimiter="/"),
            *self._uploads(prefix.rstrip("/") + "/", Delimiter="/"),
        ]
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                names.add(common["Prefix"][len(base) :].rstrip("/"))
            for item in page.get("Contents", []) + page.get("Uploads", []):
                names.add(item["Key"][len(base) :].split("/", 1)[0])
        return sorted(name for name in names if name)

    def swap(self, key: str, data: bytes, expected: str | None) -> str | None:
        """Store ``data`` as ``key`` only if the object's ETag is still ``expected`` (None: only
        if there is no such object), atomically (S3 conditional writes); return the new ETag,
        or None when the condition failed."""
        put, name, checksum = self.client.put_object, self.object_key(key), self.checksum(data)
        try:
            if expected:
                answer = put(Bucket=self.bucket, Key=name, Body=data, IfMatch=expected, **checksum)
            else:
                answer = put(Bucket=self.bucket, Key=name, Body=data, IfNoneMatch="*", **checksum)
        except _client_errors() as exc:
            failure = _answer(exc)
            if failure and failure[0] in (
                "PreconditionFailed",
                "ConditionalRequestConflict",
                "NoSuchKey",
            ):
                return None
            raise translate("write", self._where(key), exc) from exc
        return str(answer["ETag"])

    def read_tagged(self, key: str) -> tuple[bytes, str, datetime]:
        """A small object's bytes, ETag and modification time (NotFoundError if missing)."""
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            return answer["Body"].read(), str(answer["ETag"]), answer["LastModified"]
        except _client_errors() as exc:
            raise translate("read", self._where(key), exc) from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))
        except _client_errors() as exc:
            raise translate("delete", self._where(key), exc) from exc

    def _abort_uploads(self, prefix: str, started_before: datetime | None) -> int:
        aborted = 0
        for page in self._uploads(prefix):
            for upload in page.get("Uploads", []):
                if started_before is not None and upload["Initiated"] >= started_before:
                    continue
                try:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                except _client_errors() as exc:
                    raise translate("abort an upload to", upload["Key"], exc) from exc
                aborted += 1
        return aborted

    def delete_prefix(self, prefix: str) -> None:
        keys = [self._base(info.key) for info in self.list(prefix)]
        for start in range(0, len(keys), 1000):
            batch: builtins.list[ObjectIdentifierTypeDef] = [
                {"Key": key} for key in keys[start : start + 1000]
            ]
            try:
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except _client_errors() as exc:
                raise translate("delete", self._where(prefix), exc) from exc
        self._abort_uploads(prefix, None)

    def free_bytes(self) -> int | None:
        return None

    def sweep_uploads(self, older_than: datetime) -> int:
        return self._abort_uploads("", older_than)
