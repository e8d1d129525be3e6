"""The catalog: the SQL index of checkpoints (SQLAlchemy Core; SQLite or PostgreSQL).

For database backups the manifests in storage are the truth and the catalog is an index that
``warroom catalog rebuild`` can recreate from them. :func:`open_catalog` picks the dialect from
the URL and brings the schema to the newest version (:mod:`warroom.catalog.migrations`).
"""

from __future__ import annotations

from warroom.catalog.store import Catalog, CheckpointRecord, open_catalog

__all__ = ["Catalog", "CheckpointRecord", "open_catalog"]
