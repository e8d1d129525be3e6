"""The Storage conformance suite: every backend and every wrapper passes the same tests.

Backends: a local directory, and S3 against moto's server mode on a loopback port (started by
the ``s3_server`` fixture as a ``moto_server`` subprocess). Wrappers: retry over a local
directory whose every first attempt fails with a transient error (injected by
:class:`Flaky`, a wrapper, since a real disk cannot be made to fail transiently on demand),
mirror (local primary, S3 replica), and read-only (the read tests only; writes are refused).
"""

from __future__ import annotations

import builtins
import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import pytest

from tests.s3server import S3Server
from warroom.errors import (
    NotFoundError,
    ReadOnlyStorageError,
    StorageError,
    TransientStorageError,
)
from warroom.repository import (
    MirrorStorage,
    Part,
    ReadOnlyStorage,
    Repository,
    RetryStorage,
    Storage,
    Upload,
)
from warroom.repository.local import LocalStorage
from warroom.repository.s3 import S3Storage
from warroom.repository.s3wire import wire_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1 << 20
# moto dates every multipart upload 2010-11-10, so "not old enough" is tested with an older date.
LONG_AGO = datetime(2001, 1, 1, tzinfo=UTC)


class Flaky:
    """Fails the first attempt of every call with TransientStorageError (test injection)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seen: set[tuple[Any, ...]] = set()
        self.failures = 0

    def once(self, *call: Any) -> None:
        if call not in self.seen:
            self.seen.add(call)
            self.failures += 1
            raise TransientStorageError(f"injected transient failure of {call[0]}")

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute) or name in ("copies", "list"):
            return attribute

        def call(*args: Any) -> Any:
            self.once(name, *args)
            result = attribute(*args)
            return FlakyUpload(self, result) if name == "begin" else result

        return call


class FlakyUpload:
    def __init__(self, flaky: Flaky, inner: Upload) -> None:
        self.flaky, self.inner = flaky, inner

    def write(self, part: Part) -> None:
        self.flaky.once("write", id(self), part.number)
        self.inner.write(part)

    def commit(self, size: int, parts: int) -> None:
        self.flaky.once("commit", id(self))
        self.inner.commit(size, parts)

    def abort(self) -> None:
        self.inner.abort()


class Case(NamedTuple):
    storage: Storage  # under test
    writer: Storage  # what the tests write with (the same, except for read-only)


def s3_storage(
    server: S3Server, monkeypatch: pytest.MonkeyPatch, *, wire: bool = False
) -> S3Storage:
    """S3Storage over botocore's client, or over the minimal one (``wire``: what ``wal push``
    uses; the same backend, so the same suite)."""
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    client = wire_client(server.environment()) if wire else None
    assert client is not None or not wire
    return S3Storage(
        server.new_bucket(),
        "repo/prefix",
        part_size=5 * MiB,
        parallel_parts=3,
        client=cast("S3Client", client),
    )


BACKENDS = ["local", "s3", "s3-wire", "retry", "mirror", "read-only"]
WRITABLE = BACKENDS[:-1]


def make_case(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Case:
    local = LocalStorage(tmp_path / "repo")
    if kind == "local":
        return Case(local, local)
    if kind in ("s3", "s3-wire"):
        s3 = s3_storage(request.getfixturevalue("s3_server"), monkeypatch, wire=kind == "s3-wire")
        return Case(s3, s3)
    if kind == "retry":
        retry = RetryStorage(Flaky(local), sleep=lambda seconds: None)  # type: ignore[arg-type]
        return Case(retry, retry)
    if kind == "mirror":
        s3 = s3_storage(request.getfixturevalue("s3_server"), monkeypatch)
        mirror = MirrorStorage(local, [s3])
        return Case(mirror, mirror)
    return Case(ReadOnlyStorage(local), local)


@pytest.fixture(params=BACKENDS)
def case(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Case:
    return make_case(request.param, tmp_path, request, monkeypatch)


@pytest.fixture(params=WRITABLE)
def storage(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Storage:
    return make_case(request.param, tmp_path, request, monkeypatch).storage


def keys(storage: Storage, prefix: str = "") -> builtins.list[str]:
    return [info.key for info in storage.list(prefix)]


def data(storage: Storage, key: str) -> bytes:
    return b"".join(storage.get(key))


# -- reads: every backend and wrapper -------------------------------------------------------


def test_put_get_stat_list(case: Case) -> None:
    big = os.urandom(12 * MiB + 123)  # three S3 parts, sent in parallel
    assert case.writer.put("a/b/one", [b"hello ", b"world"]) == 11
    case.writer.put("a/two", iter([big[i : i + MiB] for i in range(0, len(big), MiB)]))
    case.writer.put("a/empty", [])
    storage = case.storage
    assert data(storage, "a/b/one") == b"hello world"
    assert hashlib.sha256(data(storage, "a/two")).digest() == hashlib.sha256(big).digest()
    assert data(storage, "a/empty") == b""
    assert storage.stat("a/two").size == len(big)
    assert keys(storage, "a/") == ["a/b/one", "a/empty", "a/two"]
    assert keys(storage, "a/b") == ["a/b/one"]
    assert storage.children("a") == ["b", "empty", "two"]


def test_missing_objects_raise_not_found(case: Case) -> None:
    with pytest.raises(NotFoundError):
        case.storage.get("nope")
    with pytest.raises(NotFoundError):
        case.storage.stat("nope")
    assert keys(case.storage, "nope/") == [] and case.storage.children("nope") == []


def test_closing_a_stream_early(case: Case) -> None:
    case.writer.put("big", [b"z" * (3 * MiB)])
    stream = case.storage.get("big")
    assert next(stream)
    stream.close()


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_keys_are_checked(case: Case, key: str) -> None:
    with pytest.raises(ValueError):
        case.storage.get(key)


def test_repository_objects_round_trip(case: Case) -> None:
    plain = os.urandom(MiB) + b"row\n" * 500_000
    digest = Repository(case.writer).write("wal/x", [plain])
    reading = Repository(case.storage).read("wal/x")
    assert b"".join(reading) == plain
    reading.check(digest.plain_sha256, digest.stored_sha256)
    assert reading.location in case.storage.location


# -- writes: every writable backend and wrapper ---------------------------------------------


def test_put_replaces_atomically(storage: Storage) -> None:
    storage.put("k", [b"old"])
    storage.put("k", [b"new"])
    assert data(storage, "k") == b"new"


def test_failed_put_leaves_nothing_visible(storage: Storage) -> None:
    def broken() -> Iterator[bytes]:
        yield os.urandom(11 * MiB)  # parts already uploaded when the source dies
        raise RuntimeError("source died")

    storage.put("keep", [b"old"])
    with pytest.raises(RuntimeError):
        storage.put("keep", broken())
    with pytest.raises(RuntimeError):
        storage.put("new", broken())
    assert data(storage, "keep") == b"old"
    with pytest.raises(NotFoundError):
        storage.stat("new")
    assert keys(storage) == ["keep"]
    assert storage.sweep_uploads(datetime.now(UTC) + timedelta(days=1)) == 0


def test_parts_in_any_order_and_written_again(storage: Storage) -> None:
    size = storage.part_size
    one, two, three = os.urandom(size), os.urandom(size), b"tail"
    upload = storage.begin("o")
    upload.write(Part(3, 2 * size, three))
    upload.write(Part(2, size, b"x" * size))
    upload.write(Part(2, size, two))  # a retried part replaces the first attempt
    upload.write(Part(1, 0, one))
    with pytest.raises(NotFoundError):
        storage.stat("o")
    upload.commit(2 * size + 4, 3)
    assert data(storage, "o") == one + two + three


def test_unfinished_upload_is_invisible_and_swept(storage: Storage) -> None:
    upload = storage.begin("db/x/part")
    for number in (1, 2):
        upload.write(Part(number, (number - 1) * storage.part_size, b"p" * storage.part_size))
    assert keys(storage) == []
    assert storage.sweep_uploads(LONG_AGO) == 0
    assert storage.sweep_uploads(datetime.now(UTC) + timedelta(days=1)) >= 1
    assert keys(storage) == [] and storage.sweep_uploads(datetime.now(UTC)) == 0


def test_delete_is_idempotent(storage: Storage) -> None:
    storage.put("d/x", [b"1"])
    storage.put("d/y", [b"2"])
    storage.put("e", [b"3"])
    storage.delete("d/x")
    storage.delete("d/x")
    assert keys(storage) == ["d/y", "e"]
    storage.delete_prefix("d/")
    storage.delete_prefix("d/")
    assert keys(storage) == ["e"]


# -- what each wrapper adds -----------------------------------------------------------------


def test_retry_retries_transient_errors_with_back_off(tmp_path: Path) -> None:
    waits: list[float] = []
    flaky = Flaky(LocalStorage(tmp_path))
    retry = RetryStorage(flaky, sleep=waits.append, jitter=lambda: 1.0)  # type: ignore[arg-type]
    size = 2 * retry.part_size + 1
    retry.put("k", [os.urandom(size)])
    assert flaky.failures == 5  # begin, three parts, commit, and nothing else
    assert waits == [0.25] * 5
    assert len(data(retry, "k")) == size and flaky.failures == 6 and len(waits) == 6


def test_retry_gives_up_and_never_retries_permanent_errors(tmp_path: Path) -> None:
    waits: list[float] = []

    class Down:
        calls = 0

        def stat(self, key: str) -> None:
            Down.calls += 1
            raise TransientStorageError("server busy")

        def get(self, key: str) -> None:
            Down.calls += 1
            raise StorageError("permission denied")

    retry = RetryStorage(Down(), attempts=4, sleep=waits.append, jitter=lambda: 1.0)  # type: ignore[arg-type]
    with pytest.raises(TransientStorageError):
        retry.stat("k")
    assert Down.calls == 4 and waits == [0.25, 0.5, 1.0]
    with pytest.raises(StorageError, match="permission"):
        retry.get("k")
    assert Down.calls == 5


def test_read_only_refuses_every_write(tmp_path: Path) -> None:
    local = LocalStorage(tmp_path)
    local.put("k", [b"v"])
    read_only = ReadOnlyStorage(local)
    for write in (
        lambda: read_only.put("k", [b"x"]),
        lambda: read_only.delete("k"),
        lambda: read_only.delete_prefix("k"),
        lambda: read_only.sweep_uploads(datetime.now(UTC)),
    ):
        with pytest.raises(ReadOnlyStorageError, match="read-only"):
            write()
    assert data(local, "k") == b"v"


def test_mirror_reads_the_first_intact_copy_and_says_which(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    primary = LocalStorage(tmp_path / "primary")
    replica = s3_storage(s3_server, monkeypatch)
    mirror = Repository(MirrorStorage(primary, [replica]))
    mirror.write("database/b/part", [b"rows" * 100_000])
    assert data(replica, "database/b/part") == data(primary, "database/b/part")
    with mirror.read("database/b/part") as reading:
        assert reading.location == primary.location

    path = tmp_path / "primary" / "database/b/part"
    path.write_bytes(b"WRCK" + path.read_bytes()[4:][::-1])  # damaged primary
    reading = mirror.read("database/b/part")
    assert b"".join(reading) == b"rows" * 100_000 and reading.location == replica.location

    path.unlink()  # lost primary
    with mirror.read("database/b/part") as reading:
        assert reading.location == replica.location
    assert keys(mirror.storage, "database/") == ["database/b/part"]


def test_killed_writer_leaves_nothing_visible_and_is_swept(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = s3_storage(s3_server, monkeypatch)
    script = (
        "import sys; from warroom.repository.s3 import S3Storage; "
        "s = S3Storage(sys.argv[1], 'repo/prefix', part_size=5 << 20); "
        "s.put('database/x/copy-00001', [bytes(16 << 20)])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, storage.bucket],
        env={**os.environ, "WARROOM_FAULT_POINT": "upload-part-2-written"},
        capture_output=True,
        check=False,
    )
    assert result.returncode == -9, result.stderr  # killed by the fault point, mid-upload
    assert keys(storage) == []
    uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])
    assert [upload["Key"] for upload in uploads] == ["repo/prefix/database/x/copy-00001"]
    assert storage.children("database") == ["x"]  # a backup directory with no manifest
    assert storage.sweep_uploads(LONG_AGO) == 0
    assert storage.sweep_uploads(datetime.now(UTC) + timedelta(hours=1)) == 1
    assert not storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads")


def test_an_upload_failing_mid_stream_is_aborted_and_leaves_nothing(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = s3_storage(s3_server, monkeypatch)
    storage.put("database/x/copy-00001", [b"old"])
    # Once part 2 is sent, the server loses the upload: the parts still to come or the
    # completion fail (S3 answers NoSuchUpload, moto a 500).
    abort_all = (
        "import sys, boto3; c = boto3.client('s3'); b = sys.argv[1]; "
        "[c.abort_multipart_upload(Bucket=b, Key=u['Key'], UploadId=u['UploadId']) "
        "for u in c.list_multipart_uploads(Bucket=b).get('Uploads', [])]"
    )
    monkeypatch.setenv("WARROOM_FAULT_POINT", "upload-part-2-written")
    monkeypatch.setenv(
        "WARROOM_FAULT_COMMAND", f'{sys.executable} -c "{abort_all}" {storage.bucket}'
    )
    with pytest.raises(StorageError, match="database/x/copy-00001"):
        storage.put("database/x/copy-00001", [os.urandom(16 * MiB)])
    monkeypatch.delenv("WARROOM_FAULT_POINT")
    assert data(storage, "database/x/copy-00001") == b"old"
    assert keys(storage) == ["database/x/copy-00001"]
    assert not storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads")
    assert storage.upload_slots is not None and storage.upload_slots.acquire(blocking=False)


def test_objects_written_at_once_share_the_parts_in_memory(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two objects of three parts each, written at once, each allowed 3 parts in flight: at no
    time are more bytes handed out and not yet written than the storage's 3 upload slots of
    parts, plus the one chunk each writer reads ahead to tell whether a full part is the last.
    Part 1 too is sent within its slot, not held until part 2 arrives."""
    storage = s3_storage(s3_server, monkeypatch)
    size = storage.part_size
    chunk = size // 4
    lock = threading.Lock()
    counts = {"handed": 0, "written": 0, "most": 0, "first_parts_sent": 0}

    def sent(key: str) -> list[int]:
        """The parts S3 holds of the multipart upload to ``key``."""
        client, bucket, name = storage.client, storage.bucket, storage.object_key(key)
        (upload,) = client.list_multipart_uploads(Bucket=bucket, Prefix=name)["Uploads"]
        answer = client.list_parts(Bucket=bucket, Key=name, UploadId=upload["UploadId"])
        return [part["PartNumber"] for part in answer.get("Parts", [])]

    class Counted:
        def __init__(self, inner: Upload, key: str) -> None:
            self.inner, self.key = inner, key

        def write(self, part: Part) -> None:
            self.inner.write(part)
            with lock:
                counts["written"] += len(part.data)
            if part.number == 1 and 1 in sent(self.key):
                counts["first_parts_sent"] += 1

        def commit(self, size: int, parts: int) -> None:
            self.inner.commit(size, parts)

        def abort(self) -> None:
            self.inner.abort()

    class Counting(RetryStorage):
        def begin(self, key: str) -> Upload:
            return Counted(self.inner.begin(key), key)

    counting = Counting(storage)

    def source(seed: bytes) -> Iterator[bytes]:
        for _ in range(12):
            with lock:
                counts["handed"] += chunk
                counts["most"] = max(counts["most"], counts["handed"] - counts["written"])
            yield seed * chunk

    writers = [
        threading.Thread(target=counting.put, args=(f"o{n}", source(bytes([n])))) for n in (1, 2)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert counts["handed"] == counts["written"] == 6 * size
    assert counts["first_parts_sent"] == 2  # each part 1 was sent by its own write
    assert size <= counts["most"] <= storage.parallel_parts * size + 2 * chunk
    assert storage.parallel_parts == 3
    assert data(storage, "o1") == b"\x01" * 3 * size and data(storage, "o2") == b"\x02" * 3 * size


def test_the_s3_backend_starts_light(s3_server: S3Server) -> None:
    """What a ``wal push`` to an unencrypted S3 repository loads: botocore, but not boto3 and
    s3transfer (a third of its start-up) nor cryptography."""
    script = (
        "import sys; from warroom.repository import open_repository; "
        "r = open_repository(sys.argv[1]); r.storage.put('k', [b'v']); assert not r.encrypted; "
        "print(sorted({'boto3', 's3transfer', 'cryptography', 'botocore'} "
        "& {name.split('.')[0] for name in sys.modules}))"
    )
    url = f"s3://{s3_server.new_bucket()}/r"
    result = subprocess.run(
        [sys.executable, "-c", script, url],
        env={**os.environ, **s3_server.environment()},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "['botocore']"


def test_s3_errors_never_show_credentials(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = s3_storage(s3_server, monkeypatch)
    missing = S3Storage("no-such-bucket-here", client=storage.client)
    with pytest.raises(StorageError) as raised:
        missing.put("k", [b"v"])
    text = f"{raised.value.message} {raised.value.details} {missing.location}"
    assert "NoSuchBucket" in text
    for secret in (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]):
        assert secret not in text


def test_unknown_scheme_and_credentials_in_url_are_refused() -> None:
    from warroom.errors import ConfigurationError
    from warroom.repository import open_storage

    with pytest.raises(ConfigurationError, match="ftp"):
        open_storage("ftp://host/x")
    with pytest.raises(ConfigurationError, match="never from the URL"):
        open_storage("s3://AKIAX:secret@bucket/x")
