"""What is known of a backup's health: the status words, and the check records that prove them.

One vocabulary everywhere (CLI, API, status, metrics, docs):

- ``completed``: stored, manifest written; nothing has been re-read since.
- ``checked``: every stored part re-read and its checksums matched.
- ``restore-tested``: restored into a scratch database and compared with the backup.
- ``damaged``: a check found a part missing, truncated or altered.

Every verification writes a check record into the repository beside the manifest (its key:
:func:`warroom.repository.layout.check_key`), so the results survive the catalog: ``catalog
rebuild`` reads them back (:func:`status_of`). A record is hostile input like a manifest: it
is bounded and a bad one is ignored, never promoted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationError

__all__ = [
    "CHECKED",
    "COMPLETED",
    "DAMAGED",
    "INTACT",
    "RESTORE_TESTED",
    "STATUSES",
    "CheckRecord",
    "status_of",
]

COMPLETED = "completed"
CHECKED = "checked"
RESTORE_TESTED = "restore-tested"
DAMAGED = "damaged"
STATUSES = (COMPLETED, CHECKED, RESTORE_TESTED, DAMAGED)
INTACT = (COMPLETED, CHECKED, RESTORE_TESTED)  # not known to be damaged

MAX_CHECK_BYTES = 64 << 10
CHECK_FORMAT = 1


class _CheckDocument(BaseModel):
    format: Literal[1]
    name: Annotated[str, Field(max_length=128)]
    result: Literal["checked", "restore-tested", "damaged"]
    at: datetime
    detail: Annotated[str, Field(max_length=4096)] = ""


@dataclass(frozen=True)
class CheckRecord:
    """One verification of backup ``name``: its ``result`` (a status word) at ``at``."""

    name: str
    result: str
    at: datetime
    detail: str = ""

    def to_json(self) -> bytes:
        document = {
            "format": CHECK_FORMAT,
            "name": self.name,
            "result": self.result,
            "at": self.at.isoformat(),
            "detail": self.detail[:4096],
        }
        return json.dumps(document, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, name: str, data: bytes) -> CheckRecord | None:
        """The record, or None when it is not a sane record of backup ``name``."""
        if len(data) > MAX_CHECK_BYTES:
            return None
        try:
            doc = _CheckDocument.model_validate_json(data)
        except ValidationError:
            return None
        if doc.name != name or doc.at.tzinfo is None:
            return None
        return cls(doc.name, doc.result, doc.at, doc.detail)


def status_of(
    checks: Iterable[CheckRecord], now: datetime | None = None
) -> tuple[str, datetime | None]:
    """A backup's status and when it was last verified, from its check records: ``damaged``
    if the latest check failed; otherwise the strongest result ever proved (a restore test
    stays valid while later checks find the same bytes); ``completed`` with no record.
    Records dated after ``now`` are left out: one written by a clock running ahead (or
    forged with a date to come) would otherwise outweigh every check made until then,
    including the one that just found the backup damaged."""
    ordered = sorted(
        (check for check in checks if now is None or check.at <= now),
        key=lambda check: check.at,
    )
    if not ordered:
        return COMPLETED, None
    latest = ordered[-1]
    if latest.result == DAMAGED:
        return DAMAGED, latest.at
    since_damage = ordered[
        max((i for i, c in enumerate(ordered) if c.result == DAMAGED), default=-1) + 1 :
    ]
    tested = any(check.result == RESTORE_TESTED for check in since_damage)
    return (RESTORE_TESTED if tested else CHECKED), latest.at
