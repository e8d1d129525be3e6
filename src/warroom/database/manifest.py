"""The backup manifest: ``database/<name>/manifest.json``, written last, the commit point.

A backup without its manifest does not exist. The manifest records everything a restore needs
(engine, parts and their checksums, the codec chain, database properties) and everything
``warroom catalog rebuild`` needs to re-index the backup; it never records a password.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from warroom.database import PartRecord
from warroom.errors import IntegrityError, InvalidNameError

__all__ = ["MANIFEST_FORMAT", "Manifest", "backup_prefix", "manifest_key", "validate_name"]

# 2: PostgreSQL table data in copy parts (``PartRecord.copy``); 1: in pg_dump archives only.
MANIFEST_FORMAT = 2
READABLE_FORMATS = (1, 2)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # checkpoints and parts


def validate_name(name: str) -> str:
    """Return ``name`` if it may name a checkpoint; raise InvalidNameError saying why not."""
    if not NAME_PATTERN.fullmatch(name):
        reason = (
            "it is empty"
            if not name
            else f"it is {len(name)} characters long (at most 128)"
            if len(name) > 128
            else "it must start with a letter or digit and contain only letters, digits, "
            "'.', '_' and '-'"
        )
        raise InvalidNameError(f"invalid checkpoint name {name!r}: {reason}", name=name)
    return name


def backup_prefix(name: str) -> str:
    return f"database/{validate_name(name)}/"


def manifest_key(name: str) -> str:
    return backup_prefix(name) + "manifest.json"


@dataclass
class Manifest:
    name: str
    engine: str
    kind: str
    created_at: datetime
    completed_at: datetime
    source: str
    source_database: str
    server_version: str
    tool: str
    tool_version: str
    codec: list[str]
    parts: list[PartRecord]
    tables: dict[str, int]
    database: dict[str, Any] = field(default_factory=dict)
    warroom_version: str = ""
    format: int = MANIFEST_FORMAT

    @property
    def size_original(self) -> int:
        return sum(part.plain_size for part in self.parts)

    @property
    def size_stored(self) -> int:
        return sum(part.stored_size for part in self.parts)

    @property
    def checksum(self) -> str:
        """One SHA-256 for the whole backup: over the parts' names and content checksums."""
        digest = hashlib.sha256()
        for part in self.parts:
            digest.update(f"{part.name}:{part.plain_sha256}\n".encode())
        return digest.hexdigest()

    @property
    def duration_seconds(self) -> float:
        return round((self.completed_at - self.created_at).total_seconds(), 3)

    def summary(self) -> dict[str, Any]:
        """What a user sees of a backup (CLI ``--json``, API)."""
        return {
            "name": self.name,
            "type": "database",
            "engine": self.engine,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
            "duration_seconds": self.duration_seconds,
            "size_original": self.size_original,
            "size_stored": self.size_stored,
            "checksum": self.checksum,
            "tables": self.tables,
            "parts": [part.name for part in self.parts],
        }

    def to_json(self) -> bytes:
        document: dict[str, Any] = {
            "format": self.format,
            "name": self.name,
            "engine": self.engine,
            "kind": self.kind,
            "created_at": self.created_at.isoformat(),
            "completed_at": self.completed_at.isoformat(),
            "duration_seconds": self.duration_seconds,
            "source": self.source,
            "source_database": self.source_database,
            "server_version": self.server_version,
            "tool": self.tool,
            "tool_version": self.tool_version,
            "warroom_version": self.warroom_version,
            "codec": self.codec,
            "size_original": self.size_original,
            "size_stored": self.size_stored,
            "checksum": self.checksum,
            "database": self.database,
            "tables": self.tables,
            "parts": [part.to_dict() for part in self.parts],
        }
        document["manifest_sha256"] = _document_sha256(document)
        return json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, name: str, data: bytes) -> Manifest:
        try:
            doc = json.loads(data)
            if doc.pop("manifest_sha256", None) != _document_sha256(doc):
                raise IntegrityError(
                    f"the manifest of backup {name!r} is damaged: its contents do not match "
                    "its checksum",
                    name=name,
                )
            if doc.get("format") not in READABLE_FORMATS:
                raise IntegrityError(
                    f"backup {name!r} has manifest format {doc.get('format')!r}; this version "
                    f"of warroom reads formats {', '.join(map(str, READABLE_FORMATS))}: "
                    "restore it with a newer warroom",
                    name=name,
                )
            manifest = cls(
                name=doc["name"],
                engine=doc["engine"],
                kind=doc["kind"],
                created_at=datetime.fromisoformat(doc["created_at"]),
                completed_at=datetime.fromisoformat(doc["completed_at"]),
                source=doc["source"],
                source_database=doc["source_database"],
                server_version=doc["server_version"],
                tool=doc["tool"],
                tool_version=doc["tool_version"],
                codec=list(doc["codec"]),
                parts=[PartRecord.from_dict(part) for part in doc["parts"]],
                tables={str(k): int(v) for k, v in doc["tables"].items()},
                database=dict(doc.get("database") or {}),
                warroom_version=doc.get("warroom_version", ""),
                format=doc["format"],
            )
        except IntegrityError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError(
                f"the manifest of backup {name!r} is damaged: {exc!r}", name=name
            ) from exc
        bad_parts = [p.name for p in manifest.parts if not NAME_PATTERN.fullmatch(p.name)]
        if manifest.name != name or bad_parts or doc.get("checksum") != manifest.checksum:
            raise IntegrityError(
                f"the manifest of backup {name!r} is damaged: its contents do not match "
                "its name and part checksums",
                name=name,
            )
        return manifest


def _document_sha256(document: dict[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON: any edit to any field is detected."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
