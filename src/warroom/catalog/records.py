"""What the catalog indexes, as plain values: the domain builds and reads them without loading
the catalog's SQL (SQLAlchemy), which a backup or a restore needs only to record its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["CheckpointRecord"]


@dataclass
class CheckpointRecord:
    """One checkpoint of any type, as the catalog indexes it."""

    type: str
    name: str
    status: str
    created_at: datetime
    source: str | None = None
    source_id: str | None = None
    safety: bool = False
    size_original: int | None = None
    size_stored: int | None = None
    checksum: str | None = None
    verified_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "source": self.source,
            "source_id": self.source_id,
            "safety": self.safety,
            "size_original": self.size_original,
            "size_stored": self.size_stored,
            "checksum": self.checksum,
            "verified_at": self.verified_at.isoformat() if self.verified_at else None,
            "details": self.details,
        }
