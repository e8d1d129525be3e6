"""Objects larger than S3's 10,000 parts of ``part_size``: parts grow tier by tier, memory stays
bounded, and an object past S3's limits is refused before more is sent, its upload aborted.
Against moto's server, with the limits made small (2 parts per tier, 5 MiB parts: moto's
minimum for every part but the last)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from tests.s3server import ENVIRONMENT, S3Server, recording_proxy
from warroom.errors import StorageError, TransientStorageError
from warroom.repository.local import LocalStorage
from warroom.repository.s3 import S3Storage, _MultipartUpload
from warroom.repository.s3wire import wire_client
from warroom.repository.storage import Part
from warroom.repository.wrappers import MirrorStorage, RetryStorage

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1 << 20
PART = 5 * MiB


def s3(server: S3Server, monkeypatch: pytest.MonkeyPatch, parts_per_tier: int) -> S3Storage:
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    return S3Storage(
        server.new_bucket(), "r", part_size=PART, parallel_parts=3, parts_per_tier=parts_per_tier
    )


def chunks(data: bytes, size: int = MiB) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def uploads(storage: S3Storage) -> list[Any]:
    answer = storage.client.list_multipart_uploads(Bucket=storage.bucket)
    return list(answer.get("Uploads", []))


def read(storage: S3Storage, key: str) -> bytes:
    return b"".join(storage.get(key))


def test_parts_grow_every_tier_and_the_object_reads_back_byte_identical(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """5, 5, 10, 10, 20 MiB and the 1 MiB left, as S3 lists them before the completion; the
    first tier's parts are in flight together, within the budget of 3 x 5 MiB, and larger
    parts two at a time at most: one being sent while the next is cut."""
    storage = s3(s3_server, monkeypatch, parts_per_tier=2)
    data = os.urandom(51 * MiB)
    listed: list[int] = []
    flight = {"now": 0, "most": 0, "large": 0, "most_large": 0}
    lock = threading.Lock()
    first_tier = threading.Barrier(2, timeout=10)  # parts 1 and 2 are sent at the same time

    class Watched(_MultipartUpload):
        def write(self, part: Part) -> None:
            large = len(part.data) > PART
            with lock:
                flight["now"] += len(part.data)
                flight["large"] += large
                flight["most"] = max(flight["most"], flight["now"])
                flight["most_large"] = max(flight["most_large"], flight["large"])
            try:
                if part.number <= 2:
                    first_tier.wait()
                else:
                    time.sleep(0.2)  # time enough for a second large part to join, were it cut
                super().write(part)
            finally:
                with lock:
                    flight["now"] -= len(part.data)
                    flight["large"] -= large

        def commit(self, size: int, parts: int) -> None:
            upload = self._upload_id_now()
            answer = storage.client.list_parts(
                Bucket=storage.bucket, Key=storage.object_key("big"), UploadId=upload
            )
            listed.extend(part["Size"] for part in answer["Parts"])
            super().commit(size, parts)

    monkeypatch.setattr(storage, "begin", lambda key: Watched(storage, key))
    assert RetryStorage(storage).put("big", chunks(data)) == len(data)
    assert listed == [PART, PART, 2 * PART, 2 * PART, 4 * PART, MiB]
    assert hashlib.sha256(read(storage, "big")).digest() == hashlib.sha256(data).digest()
    assert flight["most"] <= 2 * 4 * PART  # the budget, or two of the largest parts
    # Parts of 10 MiB or more: two at most (3 x 10 MiB would be what counting parts allows).
    assert flight["most_large"] == 2
    assert not uploads(storage)


def test_an_object_up_to_the_first_tier_is_cut_as_before(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = s3(s3_server, monkeypatch, parts_per_tier=3)
    sizes: list[int] = []

    class Sizes(_MultipartUpload):
        def write(self, part: Part) -> None:
            sizes.append(len(part.data))
            super().write(part)

    monkeypatch.setattr(storage, "begin", lambda key: Sizes(storage, key))
    data = os.urandom(3 * PART + 7)
    storage.put("o", chunks(data))
    assert sorted(sizes, reverse=True) == [PART, PART, PART, 7]
    assert read(storage, "o") == data


@pytest.mark.parametrize(
    ("limits", "message", "sent_parts"),
    [
        # Parts 4 and later may each be refused, in any order, before the failure is seen.
        ({"max_parts": 3}, r"part [4-6] would end at byte \d+, past S3's limit of 3 parts", 3),
        (
            {"max_object_size": 12 * MiB},
            r"part [3-6] would end at byte \d+, past S3's limit of 12 MiB per object",
            2,
        ),
    ],
)
def test_an_object_past_s3s_limits_is_refused_before_more_is_sent_and_aborted(
    s3_server: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    limits: dict[str, int],
    message: str,
    sent_parts: int,
) -> None:
    """A permanent StorageError naming the object and the limit, not retried; the part past
    the limit and those after it are never sent; no upload is left, an older object stays."""
    with recording_proxy(s3_server) as (server, sent):
        storage = s3(server, monkeypatch, parts_per_tier=100)
        for name, value in limits.items():
            setattr(storage, name, value)
        storage.put("big", [b"old"])
        with pytest.raises(StorageError, match=message) as raised:
            RetryStorage(storage, sleep=lambda _: None).put("big", chunks(os.urandom(30 * MiB)))
        parts = [
            request for request in sent if request.method == "PUT" and "partNumber=" in request.path
        ]
        assert not uploads(storage)
        assert read(storage, "big") == b"old"
    assert not isinstance(raised.value, TransientStorageError)
    assert f"{storage.location}/big" in str(raised.value)
    assert len(parts) == sent_parts  # each sent once: not retried


def test_a_mirror_cuts_parts_that_every_member_takes(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A directory takes parts of any size; of two S3 members, the longer tier (R2's: every
    part of one size) is the one both take."""
    local = LocalStorage(tmp_path / "repo")
    growing, equal = (s3(s3_server, monkeypatch, parts_per_tier=n) for n in (3, 10_000))
    assert local.parts_per_tier is None
    assert MirrorStorage(local, []).parts_per_tier is None
    assert MirrorStorage(local, [growing]).parts_per_tier == 3
    assert MirrorStorage(growing, [local, equal]).parts_per_tier == 10_000
    growing.parts_per_tier = 2
    data = os.urandom(4 * PART + MiB)  # 5, 5, 10 and 1 MiB
    MirrorStorage(local, [growing]).put("o", chunks(data))
    assert b"".join(local.get("o")) == data and read(growing, "o") == data


@pytest.mark.parametrize("client", ["botocore", "wire"])
@pytest.mark.parametrize(
    ("endpoint", "tiers"),
    [
        ("https://0123abcd.r2.cloudflarestorage.com", 10_000),
        ("https://0123abcd.eu.r2.cloudflarestorage.com", 10_000),
        ("https://minio.example:9000", 1000),
        (None, 1000),  # AWS
    ],
)
def test_on_r2_parts_keep_one_size(
    monkeypatch: pytest.MonkeyPatch, client: str, endpoint: str | None, tiers: int
) -> None:
    """R2 refuses parts of different sizes: there, an object stays within 10,000 parts of
    ``part_size``, as before, refused past them (no request is made here)."""
    environment = {**ENVIRONMENT, "AWS_REGION": "auto" if endpoint else "eu-west-1"}
    if endpoint:
        environment["AWS_ENDPOINT_URL"] = endpoint
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    wire = wire_client(environment) if client == "wire" else None
    assert wire is not None or client == "botocore"
    storage = S3Storage("b", "r", client=cast("S3Client", wire))
    assert storage.parts_per_tier == tiers
    assert RetryStorage(storage).parts_per_tier == tiers
