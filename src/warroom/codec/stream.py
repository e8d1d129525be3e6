"""Encoding and decoding one object's stream.

Decoding yields chunks of at most 1 MiB, so memory stays bounded even for data that compresses
a thousandfold. While encoding, :class:`Encoder` computes the SHA-256 and size of both the plain
and the stored bytes; :class:`Decoder` recomputes them while decoding, so a single read both
restores and verifies. A damaged object raises :class:`~warroom.errors.IntegrityError` naming
the reason; a truncated unencrypted object shows as a checksum mismatch in
:meth:`Decoder.check` (an encrypted one fails authentication at once).

Encryption needs ``keys`` (:class:`~warroom.codec.aesgcm.DataKeys`, the repository's keyring)
and binds each object to ``context``, its key in the repository; cryptography is imported only
when an object is encrypted.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, NamedTuple, cast

import zstandard

from warroom.codec.header import AES_256_GCM, ZSTD, Header, read_header
from warroom.errors import ConfigurationError, IntegrityError

if TYPE_CHECKING:
    from warroom.codec.aesgcm import DataKeys

__all__ = ["ChunkReader", "Decoder", "Digest", "Encoder"]

_OUT_CHUNK = 1 << 20
# A zstd worker compresses jobs of this size. zstd's default (four windows: 8 MiB at level 3)
# held about 40 MB of job buffers for one worker and released its output in several-MiB
# pieces; 1 MiB jobs compress as fast and as small (measured: bench/RESULTS.md).
_JOB_SIZE = 1 << 20


def _pulled_ahead(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """``chunks`` again, once their first ``size`` bytes (or all of them) have been pulled."""
    held: deque[bytes] = deque()
    pulled = 0
    for chunk in chunks:
        held.append(chunk)
        pulled += len(chunk)
        if pulled >= size:
            break

    def again() -> Iterator[bytes]:
        while held:
            yield held.popleft()  # not held once handed out
        yield from chunks

    return again()


class Digest(NamedTuple):
    """Sizes and SHA-256 (hex) of an object's plain and stored bytes."""

    plain_size: int
    plain_sha256: str
    stored_size: int
    stored_sha256: str


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
    ``threads`` zstd worker threads (0: in the calling thread), in jobs of 1 MiB. With ``keys``
    the compressed stream is encrypted under a fresh data key, bound to ``context``, asked for
    once ``compress_ahead`` bytes of it (or all of it, if less) are compressed and held: keys
    still being opened on another thread are waited for only then.
    """

    def __init__(
        self,
        level: int = 3,
        threads: int = 0,
        *,
        keys: DataKeys | None = None,
        context: bytes = b"",
        compress_ahead: int = 0,
    ) -> None:
        parameters = zstandard.ZstdCompressionParameters.from_level(
            level, threads=threads, job_size=_JOB_SIZE if threads else 0, write_checksum=True
        )
        self._compressor = zstandard.ZstdCompressor(compression_params=parameters)
        self._keys, self._context = keys, context
        self._ahead = compress_ahead
        self._digest: Digest | None = None

    @property
    def chain(self) -> tuple[str, ...]:
        return (ZSTD, AES_256_GCM) if self._keys is not None else (ZSTD,)

    @property
    def digest(self) -> Digest:
        if self._digest is None:
            raise RuntimeError("the stream has not been fully encoded yet")
        return self._digest

    def _compressed(self, chunks: Iterable[bytes], plain_hash: Any) -> Iterator[bytes]:
        compressor = self._compressor.compressobj()
        for chunk in chunks:
            plain_hash.update(chunk)
            self._plain_size += len(chunk)
            out = compressor.compress(chunk)
            if out:
                yield out
        yield compressor.flush()

    def encode(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        plain_hash, stored_hash = hashlib.sha256(), hashlib.sha256()
        self._plain_size = stored_size = 0
        stored = self._compressed(chunks, plain_hash)
        if self._keys is None:
            header = Header(self.chain, {}).to_bytes()
        else:
            if self._ahead:
                stored = _pulled_ahead(stored, self._ahead)
            from warroom.codec import aesgcm

            key, parameters = self._keys.new_data_key()
            parameters = {**parameters, "chunk": aesgcm.CHUNK}
            header = Header(self.chain, {AES_256_GCM: parameters}).to_bytes()
            stored = aesgcm.seal_chunks(key, aesgcm.associated_data(header, self._context), stored)
        for data in itertools.chain([header], stored):
            stored_hash.update(data)
            stored_size += len(data)
            yield data
        self._digest = Digest(
            self._plain_size, plain_hash.hexdigest(), stored_size, stored_hash.hexdigest()
        )


class Decoder:
    """Decodes one stored object: ``for plain_chunk in decoder.decode(stored_chunks)``.

    Raises IntegrityError for a foreign or unknown header, corrupt data, or (encrypted) a chunk
    that fails authentication; ConfigurationError for an encrypted object without ``keys``.
    With ``require_encryption`` an unencrypted object is an IntegrityError (in an encrypted
    repository, a plaintext object is a substitute). The ``digest`` of what was read is
    available once the iterator is exhausted; callers compare it with the manifest
    (:meth:`check`), which is what catches a truncated unencrypted object. With
    ``hash_plain=False`` the plain bytes are not hashed: the stored bytes' SHA-256, with zstd's
    own checksum of every frame, already proves them (what a restore relies on; ``verify``
    checks both).
    """

    def __init__(
        self,
        label: str = "object",
        *,
        hash_plain: bool = True,
        keys: DataKeys | None = None,
        context: bytes = b"",
        require_encryption: bool = False,
        **details: Any,
    ) -> None:
        self.name = label
        self.details = details or {"part": label}
        self._hash_plain = hash_plain
        self._keys, self._context = keys, context
        self._require_encryption = require_encryption
        self._digest: Digest | None = None

    @property
    def digest(self) -> Digest:
        if self._digest is None:
            raise RuntimeError("the stream has not been fully decoded yet")
        return self._digest

    def _decrypted(self, header: Header, raw: bytes, reader: ChunkReader) -> Iterator[bytes]:
        if self._keys is None:
            raise ConfigurationError(
                f"{self.name} is encrypted: set WARROOM_ENCRYPTION_KEY_FILE (or "
                "WARROOM_ENCRYPTION_KEY) to the repository's key",
                **self.details,
            )
        from warroom.codec import aesgcm

        parameters = header.parameters.get(AES_256_GCM, {})
        chunk = parameters.get("chunk")
        if not isinstance(chunk, int) or not 1 <= chunk <= 1 << 24:
            raise IntegrityError(f"{self.name} has a damaged header", **self.details)
        key = self._keys.data_key(parameters)
        records = iter(lambda: reader.read(_OUT_CHUNK), b"")
        aad = aesgcm.associated_data(raw, self._context)
        return aesgcm.open_chunks(key, aad, records, chunk, self.name, self.details)

    def decode(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The plain bytes, in chunks of at most 1 MiB whatever the compression ratio."""
        plain_hash = hashlib.sha256()
        plain_size = 0
        reader = _HashingReader(iter(chunks))
        header, raw = read_header(reader.read, self.name, self.details)
        if self._require_encryption and AES_256_GCM not in header.chain:
            raise IntegrityError(
                f"{self.name} is not encrypted, in an encrypted repository: it was not "
                "written by this repository's clients",
                **self.details,
            )
        source: ChunkReader = reader
        if AES_256_GCM in header.chain:
            source = ChunkReader(self._decrypted(header, raw, reader))
        plain: Iterator[bytes]
        if ZSTD in header.chain:
            plain = zstandard.ZstdDecompressor().read_to_iter(
                cast(IO[bytes], source), read_size=_OUT_CHUNK, write_size=_OUT_CHUNK
            )
        else:
            plain = iter(lambda: source.read(_OUT_CHUNK), b"")
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
