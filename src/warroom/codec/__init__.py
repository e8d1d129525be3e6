"""Stream filters between a source and storage, and the self-describing object format.

Every stored object starts with a header, so a restore needs no configuration to decode it::

    b"WRCK" | format version (1 byte) | length of the codec chain (1 byte) | chain, ASCII

The chain names the filters applied to the plain bytes, in order (today ``zstd``, or nothing).
Decoding yields chunks of at most 1 MiB, so memory stays bounded even for data that compresses
a thousandfold. A truncated object shows as a checksum mismatch in :meth:`Decoder.check`.
While encoding, :class:`Encoder` computes the SHA-256 and size of both the plain and the stored
bytes; :class:`Decoder` recomputes them while decoding, so a single read both restores and
verifies. A damaged object raises :class:`~warroom.errors.IntegrityError` naming the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import IO, Any, NamedTuple, cast

import zstandard

from warroom.errors import IntegrityError

__all__ = ["MAGIC", "ChunkReader", "Decoder", "Digest", "Encoder"]

MAGIC = b"WRCK"
FORMAT_VERSION = 1
ZSTD = "zstd"
_OUT_CHUNK = 1 << 20


class Digest(NamedTuple):
    """Sizes and SHA-256 (hex) of an object's plain and stored bytes."""

    plain_size: int
    plain_sha256: str
    stored_size: int
    stored_sha256: str


def _header(chain: tuple[str, ...]) -> bytes:
    names = ",".join(chain).encode("ascii")
    return MAGIC + bytes([FORMAT_VERSION, len(names)]) + names


class ChunkReader:
    """A file-like ``read(n)`` over an iterator of chunks (for zstd and ``tarfile``)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


class _HashingReader(ChunkReader):
    """A :class:`ChunkReader` that hashes and counts what it hands out."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__(chunks)
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.hash.update(data)
        self.size += len(data)
        return data


class Encoder:
    """Encodes one stream: ``for stored_chunk in encoder.encode(plain_chunks)``.

    ``digest`` is available once the returned iterator is exhausted. Compression runs on
    ``threads`` zstd worker threads (0: in the calling thread).
    """

    def __init__(self, level: int = 3, threads: int = 0) -> None:
        self._compressor = zstandard.ZstdCompressor(
            level=level, threads=threads, write_checksum=True
        )
        self._digest: Digest | None = None

    @property
    def chain(self) -> tuple[str, ...]:
        return (ZSTD,)

    @property
    def digest(self) -> Digest:
        if self._digest is None:
            raise RuntimeError("the stream has not been fully encoded yet")
        return self._digest

    def encode(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        plain_hash, stored_hash = hashlib.sha256(), hashlib.sha256()
        plain_size = stored_size = 0
        compressor = self._compressor.compressobj()

        def emit(data: bytes) -> bytes:
            nonlocal stored_size
            stored_hash.update(data)
            stored_size += len(data)
            return data

        yield emit(_header(self.chain))
        for chunk in chunks:
            plain_hash.update(chunk)
            plain_size += len(chunk)
            out = compressor.compress(chunk)
            if out:
                yield emit(out)
        yield emit(compressor.flush())
        self._digest = Digest(
            plain_size, plain_hash.hexdigest(), stored_size, stored_hash.hexdigest()
        )


class Decoder:
    """Decodes one stored object: ``for plain_chunk in decoder.decode(stored_chunks)``.

    Raises IntegrityError for a foreign or unknown header or corrupt data while decoding. The
    ``digest`` of what was read is available once the iterator is exhausted; callers compare it
    with the manifest (:meth:`check`), which is what catches a truncated object. With
    ``hash_plain=False`` the plain bytes are not hashed: the stored bytes' SHA-256, with zstd's
    own checksum of every frame, already proves them (what a restore relies on; ``verify``
    checks both).
    """

    def __init__(self, label: str = "object", *, hash_plain: bool = True, **details: Any) -> None:
        self.name = label
        self.details = details or {"part": label}
        self._hash_plain = hash_plain
        self._digest: Digest | None = None

    @property
    def digest(self) -> Digest:
        if self._digest is None:
            raise RuntimeError("the stream has not been fully decoded yet")
        return self._digest

    def decode(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The plain bytes, in chunks of at most 1 MiB whatever the compression ratio."""
        plain_hash = hashlib.sha256()
        plain_size = 0
        reader = _HashingReader(iter(chunks))
        header = reader.read(6)
        chain = self._parse_header(header + reader.read(header[5] if len(header) == 6 else 0))
        plain: Iterator[bytes]
        if chain:
            plain = zstandard.ZstdDecompressor().read_to_iter(
                cast(IO[bytes], reader), read_size=_OUT_CHUNK, write_size=_OUT_CHUNK
            )
        else:
            plain = iter(lambda: reader.read(_OUT_CHUNK), b"")
        try:
            for data in plain:
                if self._hash_plain:
                    plain_hash.update(data)
                plain_size += len(data)
                yield data
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"{self.name} is corrupt: {exc}", **self.details) from exc
        plain_sha256 = plain_hash.hexdigest() if self._hash_plain else ""
        self._digest = Digest(plain_size, plain_sha256, reader.size, reader.hash.hexdigest())

    def _parse_header(self, data: bytes) -> tuple[str, ...]:
        if len(data) < 6 or data[:4] != MAGIC or len(data) < 6 + data[5]:
            raise IntegrityError(
                f"{self.name} is not a War Room object (bad header)", **self.details
            )
        if data[4] != FORMAT_VERSION:
            raise IntegrityError(
                f"{self.name} has format version {data[4]}, this version reads "
                f"{FORMAT_VERSION}; upgrade warroom",
                **self.details,
            )
        chain = tuple(filter(None, data[6:].decode("ascii", "replace").split(",")))
        if any(name != ZSTD for name in chain):
            raise IntegrityError(f"{self.name} uses an unknown codec chain {chain}", **self.details)
        return chain

    def check(self, plain_sha256: str, stored_sha256: str | None = None) -> None:
        """Raise IntegrityError unless what was read matches the recorded checksums."""
        digest = self.digest
        if stored_sha256 is not None and digest.stored_sha256 != stored_sha256:
            raise IntegrityError(
                f"{self.name} is damaged: stored checksum {digest.stored_sha256[:16]}... "
                f"does not match the manifest's {stored_sha256[:16]}...",
                **self.details,
            )
        if self._hash_plain and digest.plain_sha256 != plain_sha256:
            raise IntegrityError(
                f"{self.name} is damaged: content checksum does not match the manifest",
                **self.details,
            )
