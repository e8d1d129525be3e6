"""Where checkpoints' bytes live: now :mod:`warroom.repository`, re-exported here for the
callers not yet switched to it (backups, WAL, workflow blobs). :mod:`warroom.storage.files`,
how local files and directories are created, stays here: locks and the catalog use it too.
"""

from __future__ import annotations

from warroom.repository.storage import ChunkStream, ObjectInfo, Storage, open_storage

__all__ = ["ChunkStream", "ObjectInfo", "Storage", "open_storage"]
