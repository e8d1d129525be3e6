"""The catalog: the SQL index of checkpoints (SQLAlchemy Core; SQLite or PostgreSQL).

For database backups the manifests in storage are the truth and the catalog is an index that
``warroom catalog rebuild`` can recreate from them. :func:`open_catalog` picks the dialect from
the URL and brings the schema to the newest version (:mod:`warroom.catalog.migrations`).

Importing this package loads no SQLAlchemy: :class:`CheckpointRecord`, the value the domain
passes around, is plain; :class:`Catalog` and :func:`open_catalog` load with their module on
first use, so a backup or a restore, which records its result only at its end, does its work
while the catalog opens on a thread (see :class:`~warroom.database.backups.BackupService`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from warroom.catalog.records import CheckpointRecord

if TYPE_CHECKING:
    from warroom.catalog.store import Catalog, open_catalog

_LAZY = ("Catalog", "open_catalog")


def __getattr__(name: str) -> object:
    """:class:`Catalog` and :func:`open_catalog`, from :mod:`warroom.catalog.store` (SQLAlchemy)."""
    if name in _LAZY:
        from warroom.catalog import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Catalog", "CheckpointRecord", "open_catalog"]
