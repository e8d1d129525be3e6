"""The one owner of bytes at rest: storage backends and their wrappers, and the repository
that writes and reads self-describing (compressed, optionally encrypted) objects in them.

Importing this package loads neither boto3 nor cryptography, nor the wrappers: ``warroom wal
push`` imports it once per WAL segment. The S3 backend and the cipher load when a URL or a
header needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from warroom.repository.storage import (
    ChunkStream,
    ObjectInfo,
    Part,
    Storage,
    Upload,
    open_storage,
    write_stream,
)

if TYPE_CHECKING:
    from warroom.repository.locks import Locker, open_locker
    from warroom.repository.objects import Reading, Repository, open_repository
    from warroom.repository.wrappers import MirrorStorage, ReadOnlyStorage, RetryStorage

_LAZY = {
    "MirrorStorage": "warroom.repository.wrappers",
    "ReadOnlyStorage": "warroom.repository.wrappers",
    "RetryStorage": "warroom.repository.wrappers",
    "Reading": "warroom.repository.objects",
    "Repository": "warroom.repository.objects",
    "open_repository": "warroom.repository.objects",
    "Locker": "warroom.repository.locks",
    "open_locker": "warroom.repository.locks",
}


def __getattr__(name: str) -> object:
    """Wrappers and the object layer load on first use (``wal push`` starts fast)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ChunkStream",
    "Locker",
    "MirrorStorage",
    "ObjectInfo",
    "Part",
    "ReadOnlyStorage",
    "Reading",
    "Repository",
    "RetryStorage",
    "Storage",
    "Upload",
    "open_locker",
    "open_repository",
    "open_storage",
    "write_stream",
]
