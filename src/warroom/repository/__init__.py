"""The one owner of bytes at rest: storage backends and their wrappers, and the repository
that writes and reads self-describing (compressed, optionally encrypted) objects in them.

Importing this package loads neither boto3 nor cryptography: ``warroom wal push`` imports it
once per WAL segment. The S3 backend and the cipher load when a URL or a header needs them.
"""

from __future__ import annotations

from warroom.repository.objects import Reading, Repository
from warroom.repository.storage import (
    ChunkStream,
    ObjectInfo,
    Part,
    Storage,
    Upload,
    open_storage,
    write_stream,
)
from warroom.repository.wrappers import MirrorStorage, ReadOnlyStorage, RetryStorage

__all__ = [
    "ChunkStream",
    "MirrorStorage",
    "ObjectInfo",
    "Part",
    "ReadOnlyStorage",
    "Reading",
    "Repository",
    "RetryStorage",
    "Storage",
    "Upload",
    "open_storage",
    "write_stream",
]
