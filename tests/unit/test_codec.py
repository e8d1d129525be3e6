"""The object format: round trips, and every kind of damage refused."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from warroom.codec import MAGIC, Decoder, Encoder
from warroom.errors import IntegrityError


def _encode(data: bytes, chunk: int = 4096) -> tuple[bytes, Encoder]:
    encoder = Encoder(level=3)
    stored = b"".join(encoder.encode(data[i : i + chunk] for i in range(0, len(data), chunk)))
    return stored, encoder


def _decode(stored: bytes, chunk: int = 1000, hash_plain: bool = True) -> tuple[bytes, Decoder]:
    decoder = Decoder("part", hash_plain=hash_plain)
    plain = b"".join(decoder.decode(stored[i : i + chunk] for i in range(0, len(stored), chunk)))
    return plain, decoder


@pytest.mark.parametrize("size", [0, 1, 5, 70_000, 1_500_000])
def test_round_trip_and_digests(size: int) -> None:
    data = os.urandom(size // 2) + b"a" * (size - size // 2)
    stored, encoder = _encode(data)
    assert stored.startswith(MAGIC)
    plain, decoder = _decode(stored)
    assert plain == data
    assert encoder.digest == decoder.digest
    assert encoder.digest.plain_sha256 == hashlib.sha256(data).hexdigest()
    assert encoder.digest.stored_sha256 == hashlib.sha256(stored).hexdigest()
    decoder.check(encoder.digest.plain_sha256, encoder.digest.stored_sha256)


def test_a_zstd_worker_hands_out_small_pieces() -> None:
    """With a worker thread, zstd compresses 1 MiB jobs: a piece of its output is the few
    jobs done meanwhile (it has four job slots), not one of its default jobs (8 MiB at level
    3): that is what a writer holds at once."""
    data = os.urandom(32 << 20)  # incompressible: a job's output is as big as the job
    encoder = Encoder(level=3, threads=1)
    pieces = list(encoder.encode(data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20)))
    assert max(len(piece) for piece in pieces) < 6 << 20
    plain, decoder = _decode(b"".join(pieces), chunk=1 << 20)
    assert plain == data
    decoder.check(encoder.digest.plain_sha256, encoder.digest.stored_sha256)


def test_compresses_repetitive_data() -> None:
    stored, encoder = _encode(b"row,1,some text\n" * 100_000)
    assert encoder.digest.stored_size < encoder.digest.plain_size / 20


@pytest.mark.parametrize("hash_plain", [True, False])
def test_flipped_byte_is_refused(hash_plain: bool) -> None:
    stored, encoder = _encode(os.urandom(10_000) + b"x" * 50_000)
    damaged = bytearray(stored)
    damaged[len(damaged) // 2] ^= 0x10
    with pytest.raises(IntegrityError):
        _, decoder = _decode(bytes(damaged), hash_plain=hash_plain)
        decoder.check(encoder.digest.plain_sha256, encoder.digest.stored_sha256)


def test_without_hashing_the_plain_bytes_the_stored_checksum_still_decides() -> None:
    stored, encoder = _encode(b"abc" * 10_000)
    plain, decoder = _decode(stored, hash_plain=False)
    assert plain == b"abc" * 10_000
    decoder.check("not compared", encoder.digest.stored_sha256)
    with pytest.raises(IntegrityError, match="stored checksum"):
        decoder.check(encoder.digest.plain_sha256, "0" * 64)


def test_truncated_object_is_refused() -> None:
    stored, encoder = _encode(os.urandom(50_000))
    with pytest.raises(IntegrityError, match="damaged|corrupt"):
        _, decoder = _decode(stored[:-20])
        decoder.check(encoder.digest.plain_sha256)


def test_decoding_memory_is_bounded_for_highly_compressible_data() -> None:
    stored, _ = _encode(b"\0" * (40 << 20), chunk=1 << 20)
    assert len(stored) < 100_000
    decoder = Decoder("zeros")
    sizes = [len(chunk) for chunk in decoder.decode([stored])]
    assert sum(sizes) == 40 << 20 and max(sizes) <= 1 << 20


@pytest.mark.parametrize(
    "header", [b"", b"WR", b"NOPE\x01\x04zstd", b"WRCK\x09\x04zstd", b"WRCK\x01\x04lz77"]
)
def test_foreign_or_unknown_headers_are_refused(header: bytes) -> None:
    with pytest.raises(IntegrityError):
        _decode(header + b"\x00" * 10)


def test_check_names_the_part_and_mismatch() -> None:
    stored, encoder = _encode(b"hello")
    _, decoder = _decode(stored)
    with pytest.raises(IntegrityError, match="part is damaged") as error:
        decoder.check("0" * 64)
    assert error.value.details == {"part": "part"}


class _CountingKeys:
    """Data keys that note how many plain bytes the encoder had read when it asked for one."""

    def __init__(self, fed: list[int]) -> None:
        self.fed, self.asked_at = fed, -1

    def new_data_key(self) -> tuple[bytes, dict[str, str]]:
        self.asked_at = sum(self.fed)
        return os.urandom(32), {"key": "0" * 16, "wrapped": ""}

    def data_key(self, parameters: dict[str, str]) -> bytes:
        raise AssertionError("not decoding")


@pytest.mark.parametrize(("megabytes", "ahead"), [(2, 4), (12, 4), (12, 0)])
def test_an_encrypted_stream_is_compressed_ahead_of_its_data_key(
    megabytes: int, ahead: int
) -> None:
    """The data key is asked for once ``compress_ahead`` bytes are compressed (or all, if
    less): keys still opening on another thread (wal push) are waited for only then, and a
    large stream is not held whole."""
    fed: list[int] = []
    keys = _CountingKeys(fed)

    def chunks() -> Iterator[bytes]:
        for _ in range(megabytes):
            fed.append(1 << 20)
            yield os.urandom(1 << 20)  # incompressible: 1 MiB in, about 1 MiB out

    encoder = Encoder(level=1, keys=keys, context=b"k", compress_ahead=ahead << 20)
    next(encoder.encode(chunks()))  # the header: the data key is known
    if ahead == 0:
        assert keys.asked_at == 0
    elif megabytes < ahead:
        assert keys.asked_at == megabytes << 20
    else:
        assert ahead << 20 <= keys.asked_at <= (ahead + 2) << 20
