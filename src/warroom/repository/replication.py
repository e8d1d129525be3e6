"""``warroom repo sync``: copy what one copy of a repository lacks from another, verified.

Replication is synchronous: every write goes to the primary and each replica
(:class:`~warroom.repository.wrappers.MirrorStorage`) and succeeds only once every copy holds
it, so a backup or WAL segment that was reported done is in every repository. Sync is the
catch-up for what a mirror cannot do itself: a replica added later, one that was rebuilt, or a
primary restored empty. It copies the stored bytes (encrypted objects stay encrypted, and
readable there because ``keys/`` is copied first and kept up to date after a rotation), each
object atomically, data before the commit points (``*.json``: manifests, WAL records), and
reads every copy back to compare its SHA-256 with the source's. Interrupted, it resumes: a
rerun copies what is still missing. A backup a repository's own retention has deleted there
is not copied back (the caller names those, per destination, in ``skip``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from warroom.errors import IntegrityError, NotFoundError
from warroom.repository.layout import KEYS_PREFIX, LOCK_PREFIXES, backup_prefix
from warroom.repository.storage import Storage

__all__ = ["SyncReport", "sync"]


@dataclass
class SyncReport:
    copied: dict[str, int] = field(default_factory=dict)  # destination -> objects copied
    bytes: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"copied": self.copied, "bytes": self.bytes}


def _hashed(chunks: Iterable[bytes], digest: Any) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


def _sha256(storage: Storage, key: str) -> str:
    digest = hashlib.sha256()
    with closing(storage.get(key)) as stream:
        for _chunk in _hashed(stream, digest):
            pass
    return digest.hexdigest()


def copy_object(source: Storage, destination: Storage, key: str) -> int:
    """Copy ``key`` (stored bytes, streamed) and read it back; IntegrityError if it differs."""
    digest = hashlib.sha256()
    with closing(source.get(key)) as stream:
        size = destination.put(key, _hashed(stream, digest))
    if _sha256(destination, key) != digest.hexdigest():
        raise IntegrityError(
            f"the copy of {key} in {destination.location} does not read back as written", key=key
        )
    return size


def _order(key: str) -> int:
    """Keys first, then data, then the commit points that make data visible."""
    return 0 if key.startswith(KEYS_PREFIX) else 2 if key.endswith(".json") else 1


def sync(copies: list[Storage], skip: Mapping[str, Collection[str]] | None = None) -> SyncReport:
    """Give every copy each object another copy has (from the first that has it); key files
    that differ are replaced by the first copy's. Unfinished uploads and locks are not copied,
    nor to a copy the backups ``skip`` names for its location."""
    report = SyncReport()
    listings = {
        id(copy): {i.key: i.size for i in copy.list() if not i.key.startswith(LOCK_PREFIXES)}
        for copy in copies
    }
    everything = sorted(
        {key for listing in listings.values() for key in listing}, key=lambda k: (_order(k), k)
    )
    for destination in copies:
        have = listings[id(destination)]
        unwanted = tuple(backup_prefix(name) for name in (skip or {}).get(destination.location, ()))
        copied = 0
        for key in everything:
            if key.startswith(unwanted) and key not in have:
                continue
            source = next(c for c in copies if key in listings[id(c)])
            if source is destination:
                continue
            if key in have and not (
                key.startswith(KEYS_PREFIX) and _sha256(source, key) != _sha256(destination, key)
            ):
                continue
            try:
                report.bytes += copy_object(source, destination, key)
            except NotFoundError:
                continue  # deleted since it was listed (a cleanup)
            copied += 1
        report.copied[destination.location] = copied
    return report
