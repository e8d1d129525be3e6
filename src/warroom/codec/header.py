"""The header every stored object starts with, and the registry of the filters it may name.

::

    b"WRCK" | version (1 byte) | length of the chain (1 byte) | chain, ASCII, comma-separated
    version 2 only:            | length of the parameters (2 bytes, big-endian) | parameters

The chain names the filters applied to the plain bytes, in order (``zstd``, then
``aes-256-gcm`` when encrypted, or nothing). Version 1 (what every object had before
encryption, and still what an unencrypted object gets, so older readers keep reading it) has no
parameters; version 2 adds a JSON object of each filter's parameters by filter name (the
cipher's key id and wrapped data key). Anything else is an IntegrityError.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from warroom.errors import IntegrityError

__all__ = ["FILTERS", "MAGIC", "Header", "read_header"]

MAGIC = b"WRCK"
ZSTD = "zstd"
AES_256_GCM = "aes-256-gcm"
FILTERS = (ZSTD, AES_256_GCM)  # the registry: what this version can decode
MAX_PARAMETERS = 4096


class Header(NamedTuple):
    chain: tuple[str, ...]
    parameters: dict[str, dict[str, Any]]

    def to_bytes(self) -> bytes:
        names = ",".join(self.chain).encode("ascii")
        if not self.parameters:
            return MAGIC + bytes([1, len(names)]) + names
        params = json.dumps(self.parameters, sort_keys=True, separators=(",", ":")).encode()
        return MAGIC + bytes([2, len(names)]) + names + len(params).to_bytes(2, "big") + params


def read_header(read: Any, label: str, details: dict[str, Any]) -> tuple[Header, bytes]:
    """Parse the header from ``read(n)`` (a file-like read); return it and its exact bytes.
    IntegrityError for a foreign, unknown or damaged header."""

    def refuse(why: str) -> IntegrityError:
        return IntegrityError(f"{label} {why}", **details)

    start = read(6)
    if len(start) < 6 or start[:4] != MAGIC:
        raise refuse("is not a War Room object (bad header)")
    version = start[4]
    if version not in (1, 2):
        raise refuse(f"has format version {version}, this version reads 1 and 2; upgrade warroom")
    names = read(start[5])
    if len(names) < start[5]:
        raise refuse("is not a War Room object (bad header)")
    raw = start + names
    chain = tuple(filter(None, names.decode("ascii", "replace").split(",")))
    unknown = [name for name in chain if name not in FILTERS]
    if unknown or len(set(chain)) != len(chain):
        raise refuse(f"uses an unknown codec chain {chain}")
    parameters: dict[str, dict[str, Any]] = {}
    if version == 2:
        size_bytes = read(2)
        size = int.from_bytes(size_bytes, "big") if len(size_bytes) == 2 else MAX_PARAMETERS + 1
        data = read(size) if size <= MAX_PARAMETERS else b""
        if len(data) != size:
            raise refuse("has a damaged header")
        raw += size_bytes + data
        try:
            parameters = json.loads(data)
        except ValueError:
            parameters = None  # type: ignore[assignment]
        if not isinstance(parameters, dict) or any(
            not isinstance(v, dict) for v in parameters.values()
        ):
            raise refuse("has a damaged header")
    return Header(chain, parameters), raw
