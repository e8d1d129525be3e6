"""AES-256-GCM in authenticated chunks, each object under its own data key.

The plain stream is cut into chunks of ``chunk`` bytes (the last may be shorter, or empty);
each is sealed with the object's data key and the nonce ``counter (11 bytes, big-endian) |
last (1 byte)``, as in the STREAM construction, and the associated data ``SHA-256(header |
context)``, where the context is the object's key in the repository. So a chunk that is altered,
dropped, reordered, moved from another object, or an object stored under another name, fails to
open, and so does a stream cut at a chunk boundary (its new last chunk was not sealed as last).
A nonce never repeats: each data key seals one object. Any such failure is an IntegrityError.

The data key is a :class:`DataKeys` matter (the repository's keyring): it makes a fresh key
with the header parameters that name its wrapping, and unwraps one from them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from warroom.errors import IntegrityError

__all__ = ["CHUNK", "DataKeys", "open_chunks", "seal_chunks"]

CHUNK = 256 * 1024
TAG = 16


class DataKeys(Protocol):
    """Where objects' data keys come from (implemented by the repository's keyring)."""

    def new_data_key(self) -> tuple[bytes, dict[str, Any]]:
        """A fresh 32-byte data key and the header parameters that let :meth:`data_key` find
        it again (a key id and the wrapped key; never the key itself)."""
        ...

    def data_key(self, parameters: dict[str, Any]) -> bytes:
        """The data key these parameters name; IntegrityError when no key of the keyring
        unwraps it (a wrong key, or altered parameters)."""
        ...


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def associated_data(header: bytes, context: bytes) -> bytes:
    return hashlib.sha256(header + b"\x00" + context).digest()


def seal_chunks(
    key: bytes, aad: bytes, chunks: Iterable[bytes], chunk: int = CHUNK
) -> Iterator[bytes]:
    """The sealed records of ``chunks`` (see the module docstring)."""
    cipher = AESGCM(key)
    buffer = bytearray()
    counter = 0
    for data in chunks:
        buffer += data
        start = 0
        while len(buffer) - start > chunk:  # strictly: the last record is sealed as last
            # a view, not a copy; the buffer is shifted once per input, not once per record
            record = memoryview(buffer)[start : start + chunk]
            sealed = cipher.encrypt(_nonce(counter, False), record, aad)
            record.release()
            yield sealed
            start += chunk
            counter += 1
        del buffer[:start]
    yield cipher.encrypt(_nonce(counter, True), bytes(buffer), aad)


def open_chunks(
    key: bytes,
    aad: bytes,
    records: Iterable[bytes],
    chunk: int,
    label: str,
    details: dict[str, Any],
) -> Iterator[bytes]:
    """The plain chunks of sealed ``records``; IntegrityError at the first that fails."""
    cipher = AESGCM(key)
    size = chunk + TAG
    buffer = bytearray()
    counter = 0

    def opened(record: bytes, last: bool) -> bytes:
        try:
            return cipher.decrypt(_nonce(counter, last), record, aad)
        except InvalidTag:
            raise IntegrityError(
                f"{label} failed authentication at chunk {counter}: the key is wrong, or the "
                "object was altered, truncated, reordered or swapped",
                **details,
            ) from None

    for data in records:
        buffer += data
        start = 0
        while len(buffer) - start > size:  # as seal_chunks cuts them
            yield opened(bytes(memoryview(buffer)[start : start + size]), False)
            start += size
            counter += 1
        del buffer[:start]
    if len(buffer) < TAG:
        raise IntegrityError(f"{label} is truncated", **details)
    yield opened(bytes(buffer), True)
