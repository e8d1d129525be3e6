"""The backup manifest (its key: :func:`warroom.repository.layout.manifest_key`), written
last, the commit point.

A backup without its manifest does not exist. The manifest records everything a restore needs
(engine, parts and their checksums, the codec chain, database properties) and everything
``warroom catalog rebuild`` needs to re-index the backup (its source, whether it is a safety
backup); it never records a password.

A manifest is read as hostile input: :meth:`Manifest.from_json` bounds its size, its nesting,
every size, count and name in it, and refuses it whole (IntegrityError) before a caller acts on
any of it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from warroom.database import PartRecord, Source
from warroom.errors import ConfigurationError, IntegrityError
from warroom.repository.layout import NAME_PATTERN

__all__ = [
    "MANIFEST_FORMAT",
    "MAX_MANIFEST_BYTES",
    "Manifest",
    "check_source",
    "legacy_source",
]

# 3: PostgreSQL sequence values and populated materialized views in parts of their own, and
# partitions loaded through their root (``via``); 2: table data in copy parts
# (``PartRecord.copy``); 1: in pg_dump archives only.
MANIFEST_FORMAT = 3
READABLE_FORMATS = (1, 2, 3)

# Bounds on what a manifest may say, far above any real backup and far below what would
# overflow a catalog column, a sum or memory.
MAX_MANIFEST_BYTES = 256 << 20
MAX_SIZE = 1 << 50  # bytes of one part (1 PiB)
MAX_ROWS = (1 << 63) - 1  # a table's row count: PostgreSQL's bigint
MAX_PARTS = 1_000_000
MAX_TABLES = 10_000_000
MAX_TEXT = 4096  # one name, version or URL
# A source's id is a catalog column (String(500)) that backups are grouped by, and
# PostgreSQL stores no NUL: one that does not fit would abort a whole catalog rebuild. (The
# label, for people, is cut to the column's width in the catalog.)
MAX_SOURCE_TEXT = 500


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
    source_id: str = ""  # Source.id; "" only while being built
    source_address: str = ""
    safety: bool = False  # taken by a restore of the previous contents of its target

    @property
    def source_info(self) -> Source:
        return Source(self.source_id, self.source_address, self.source)

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
            "source_id": self.source_id,
            "safety": self.safety,
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
            "source_id": self.source_id,
            "source_address": self.source_address,
            "safety": self.safety,
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
        """Parse and check the manifest of backup ``name``; IntegrityError, naming what is
        wrong, for anything damaged, forged or out of bounds."""

        def damaged(reason: str) -> IntegrityError:
            return IntegrityError(
                f"the manifest of backup {name!r} is damaged: {reason}", name=name
            )

        if len(data) > MAX_MANIFEST_BYTES:
            raise damaged(f"it is {len(data)} bytes long (at most {MAX_MANIFEST_BYTES})")
        try:
            raw = json.loads(data)
        except RecursionError:
            raise damaged("it is nested too deeply") from None
        except ValueError as exc:
            raise damaged(f"it is not JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise damaged("it is not a JSON object")
        if raw.pop("manifest_sha256", None) != _document_sha256(raw):
            raise damaged("its contents do not match its checksum")
        if raw.get("format") not in READABLE_FORMATS:
            raise IntegrityError(
                f"backup {name!r} has manifest format {raw.get('format')!r}; this version "
                f"of warroom reads formats {', '.join(map(str, READABLE_FORMATS))}: "
                "restore it with a newer warroom",
                name=name,
            )
        try:
            doc = _Document.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"])) or "the document"
            raise damaged(f"{where}: {first['msg']}") from None
        manifest = cls(
            name=doc.name,
            engine=doc.engine,
            kind=doc.kind,
            created_at=doc.created_at,
            completed_at=doc.completed_at,
            source=doc.source,
            source_database=doc.source_database,
            server_version=doc.server_version,
            tool=doc.tool,
            tool_version=doc.tool_version,
            codec=list(doc.codec),
            parts=[PartRecord.from_dict(part.model_dump()) for part in doc.parts],
            tables=dict(doc.tables),
            database=doc.database,
            warroom_version=doc.warroom_version,
            format=doc.format,
            **_source_fields(doc),
        )
        if manifest.name != name or raw.get("checksum") != manifest.checksum:
            raise damaged("its contents do not match its name and part checksums")
        return manifest


def check_source(source: Source) -> Source:
    """``source`` if a manifest can record it (and the catalog index it); else a clear
    ConfigurationError, before anything is backed up."""
    for what, value in (("id", source.id), ("address", source.address), ("label", source.label)):
        if len(value) > (MAX_TEXT if what == "label" else MAX_SOURCE_TEXT) or _CONTROL.search(
            value
        ):
            raise ConfigurationError(
                f"the database's {what} {value[:80]!r}... cannot be recorded: at most "
                f"{MAX_SOURCE_TEXT if what != 'label' else MAX_TEXT} characters and no control "
                "characters (move the database to a shorter path, or shorten the URL)"
            )
    return source


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def legacy_source(label: str) -> Source:
    """The source of a backup made before sources were recorded: its address, read from the
    label (``postgresql://user@host:port/db`` or ``sqlite:///path``)."""
    from urllib.parse import urlsplit

    if label.startswith("sqlite:///"):
        address = f"sqlite:{label[len('sqlite:///') :]}"
        return Source(address, address, label)
    parts = urlsplit(label)
    host = parts.hostname or "localhost"
    address = f"postgresql://{host}:{parts.port or 5432}{parts.path}"
    return Source(address, address, label)


def _source_fields(doc: _Document) -> dict[str, Any]:
    """Source and safety as recorded; for manifests written before they were (no
    ``source_id``), the address read from the label and the name's ``safety-`` prefix."""
    if doc.source_id is not None:
        return {
            "source_id": doc.source_id,
            "source_address": doc.source_address or doc.source_id,
            "safety": doc.safety,
        }
    legacy = legacy_source(doc.source)
    return {
        "source_id": legacy.id,
        "source_address": legacy.address,
        "safety": doc.name.startswith("safety-"),
    }


Text = Annotated[str, Field(max_length=MAX_TEXT)]
Label = Annotated[str, Field(max_length=MAX_TEXT, pattern=r"^[^\x00-\x1f\x7f]*$")]
SourceText = Annotated[str, Field(max_length=MAX_SOURCE_TEXT, pattern=r"^[^\x00-\x1f\x7f]*$")]
Size = Annotated[int, Field(ge=0, le=MAX_SIZE)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
PartName = Annotated[str, Field(pattern=NAME_PATTERN.pattern)]


class _Bounded(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=False, frozen=True)


class _CopyTable(_Bounded):
    model_config = ConfigDict(extra="allow", frozen=True)
    schema_: Text = Field(alias="schema")
    name: Text
    columns: Annotated[list[Text], Field(max_length=1600)]  # PostgreSQL's column limit
    via: Annotated[list[Text], Field(min_length=2, max_length=2)] | None = None  # (schema, root)

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        return super().model_dump(by_alias=True, exclude_none=True, **kwargs)


class _Part(_Bounded):
    name: PartName
    role: Text
    table: Text | None = None
    plain_size: Size
    plain_sha256: Sha256
    stored_size: Size
    stored_sha256: Sha256
    copy_: Annotated[list[_CopyTable], Field(alias="copy", max_length=100_000)] = []

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        data = super().model_dump(exclude={"copy_"}, **kwargs)
        data["copy"] = [table.model_dump() for table in self.copy_]
        return data


class _Properties(_Bounded):
    """The database properties a restore applies (``PostgresEngine._database_properties``,
    a physical backup's WAL position): each what the restore's SQL expects, so that a forged
    one is refused here, not met as a TypeError halfway through a restore."""

    model_config = ConfigDict(extra="allow", frozen=True)
    encoding: Text | None = None
    collate: Text | None = None
    ctype: Text | None = None
    locale_provider: Text | None = None
    icu_locale: Text | None = None
    owner: Text | None = None
    connection_limit: Annotated[int, Field(ge=-1, le=(1 << 31) - 1)] | None = None
    comment: Text | None = None
    acl: Annotated[list[tuple[Text, Text, bool]], Field(max_length=100_000)] | None = None
    settings: Annotated[list[tuple[Text | None, Text]], Field(max_length=100_000)] | None = None
    server_version: Text | None = None
    start_lsn: Text | None = None
    end_lsn: Text | None = None
    start_wal: Text | None = None
    timeline: Annotated[int, Field(ge=0, le=(1 << 32) - 1)] | None = None


class _Document(_Bounded):
    """The manifest's JSON as it may be: every field typed and bounded."""

    format: int
    name: Annotated[str, Field(pattern=NAME_PATTERN.pattern)]
    engine: Literal["postgresql", "sqlite"]
    kind: Literal["logical", "physical"]
    created_at: AwareDatetime  # a time without its zone cannot be compared with now
    completed_at: AwareDatetime
    source: Label
    source_id: SourceText | None = None
    source_address: SourceText | None = None
    safety: bool = False
    source_database: Text
    server_version: Text
    tool: Text
    tool_version: Text
    warroom_version: Text = ""
    codec: Annotated[list[Literal["zstd"]], Field(max_length=8)]
    parts: Annotated[list[_Part], Field(max_length=MAX_PARTS)]
    tables: Annotated[
        dict[Text, Annotated[int, Field(ge=0, le=MAX_ROWS)]], Field(max_length=MAX_TABLES)
    ]
    database: dict[str, Any] = {}

    @field_validator("database")
    @classmethod
    def _properties(cls, value: dict[str, Any]) -> dict[str, Any]:
        _Properties.model_validate(value)
        return value  # as recorded: kept whole, checked above


def _document_sha256(document: dict[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON: any edit to any field is detected."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
