"""The blob repository: where checkpoints' bytes live.

A backend implements :class:`Storage`; :func:`open_storage` picks one by URL scheme
(``file://`` or a plain path today). Keys are ``/``-separated relative paths built by the code
(``database/<name>/manifest.json``), never taken raw from users.

Contract, for every backend:

- ``put(key, chunks)`` consumes the iterable and makes the object visible only once every byte
  is durably stored; on any failure nothing is visible under ``key`` (an older object stays).
- ``get(key)`` streams the object in chunks (a :class:`ChunkStream`); it closes itself when
  exhausted, and a caller that stops early closes it (``with closing(storage.get(key))``). A
  missing object raises :class:`~warroom.errors.NotFoundError` at once, not while iterating.
- ``stat`` raises :class:`~warroom.errors.NotFoundError` for a missing object; ``delete`` and
  ``delete_prefix`` are idempotent.
- Every other failure (permissions, disk full, I/O) raises :class:`~warroom.errors.StorageError`.
- Local files and directories are created as :mod:`warroom.storage.files` says: private
  (0600/0700), or shared with the group ``WARROOM_SHARED_GROUP`` names.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import NamedTuple, Protocol

from warroom.errors import ConfigurationError

__all__ = ["ChunkStream", "ObjectInfo", "Storage", "open_storage"]


class ObjectInfo(NamedTuple):
    key: str
    size: int
    modified: datetime


class ChunkStream(Protocol):
    """An object's bytes, in chunks; ``close`` releases it early."""

    def __iter__(self) -> Iterator[bytes]: ...

    def __next__(self) -> bytes: ...

    def close(self) -> None: ...


class Storage(Protocol):
    """What every storage backend provides (see the module docstring for the contract)."""

    @property
    def location(self) -> str:
        """Where the repository is, safe to print (no credentials)."""
        ...

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        """Store ``chunks`` atomically under ``key``; return the number of bytes stored."""
        ...

    def get(self, key: str) -> ChunkStream: ...

    def stat(self, key: str) -> ObjectInfo: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every complete object whose key starts with ``prefix``, in key order."""
        ...

    def children(self, prefix: str) -> builtins.list[str]:
        """Names directly under ``prefix/``, including those holding only unfinished writes."""
        ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object under ``prefix``, including unfinished writes."""
        ...

    def free_bytes(self) -> int | None:
        """Space left for new objects, or None when the backend cannot tell."""
        ...


def open_storage(url: str | Path) -> Storage:
    """Open the repository at ``url``: ``file:///path`` or a plain directory path."""
    from urllib.parse import unquote, urlsplit  # here: wal push imports this module

    from warroom.storage.local import LocalStorage

    text = str(url)
    parts = urlsplit(text)
    if parts.scheme in ("", "file") or (len(parts.scheme) == 1 and text[1:3] == ":\\"):
        path = unquote(parts.path) if parts.scheme == "file" else text
        return LocalStorage(Path(path))
    raise ConfigurationError(
        f"unsupported storage URL scheme {parts.scheme!r} in {text!r}; "
        "use a directory path or a file:// URL"
    )
