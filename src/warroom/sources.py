"""Database backups grouped by their source: what list, status, retention, metrics, restore
tests and the deployment check all read, so that they agree on which backup is whose.

A catalog row's source is its ``source_id`` (see :class:`warroom.database.Source`); rows indexed
before sources were recorded have none, and their source is the address read from their label.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from warroom.catalog import CheckpointRecord
from warroom.database import Source
from warroom.database.manifest import legacy_source
from warroom.database.verification import DAMAGED, RESTORE_TESTED

__all__ = ["SourceBackups", "backup_brief", "group_by_source", "source_id_of"]


def source_id_of(record: CheckpointRecord) -> str:
    return record.source_id or legacy_source(record.source or "").id


def _address_of(record: CheckpointRecord) -> str:
    return str(record.details.get("source_address") or legacy_source(record.source or "").address)


def backup_brief(record: CheckpointRecord | None, now: datetime) -> dict[str, Any] | None:
    """Name, status, creation time and age of one backup, as status and list show it."""
    if record is None:
        return None
    return {
        "name": record.name,
        "status": record.status,
        "created_at": record.created_at.isoformat(),
        "age_hours": round((now - record.created_at).total_seconds() / 3600, 2),
    }


@dataclass
class SourceBackups:
    """The backups of one source, oldest first. The ``newest_*`` lookups pass over backups
    dated after ``now`` (a clock that ran ahead, or a forged manifest): such a backup must not
    make a stale database look fresh."""

    id: str
    label: str
    backups: list[CheckpointRecord] = field(default_factory=list)
    configured: bool = False
    now: datetime | None = None

    def _newest(
        self, *, safety: bool | None = False, status: str | None = None
    ) -> CheckpointRecord | None:
        for record in reversed(self.backups):
            if record.status == DAMAGED or (safety is not None and record.safety != safety):
                continue
            if self.now is not None and record.created_at > self.now:
                continue
            if status is None or record.status == status:
                return record
        return None

    @property
    def newest_intact(self) -> CheckpointRecord | None:
        """The newest backup not known to be damaged (safety backups aside)."""
        return self._newest()

    @property
    def newest_restore_tested(self) -> CheckpointRecord | None:
        return self._newest(safety=None, status=RESTORE_TESTED)

    @property
    def newest_logical(self) -> CheckpointRecord | None:
        """The newest intact logical backup (safety backups aside): what a restore test of
        this source tries."""
        logical = [r for r in self.backups if r.details.get("kind") != "physical"]
        return SourceBackups(self.id, self.label, logical, now=self.now).newest_intact

    def pitr_window(self, window: dict[str, Any] | None) -> dict[str, Any] | None:
        """The repository's point-in-time window (``PointInTimeRecovery.window()``) when it
        starts from base backups of this source, else None."""
        names = {record.name for record in self.backups}
        return window if window and names.intersection(window["base_backups"]) else None


def group_by_source(
    records: Iterable[CheckpointRecord], configured: Source | None, now: datetime
) -> list[SourceBackups]:
    """The database backups of ``records`` by source, the configured source first (present
    even with no backup; its backups are those of its id, or of its address for rows that
    were recorded while its identity could not be read), then the others by label.

    An address is not an identity: two servers can both be ``localhost:5432`` to the hosts
    that share a repository. A backup that knows its server's identity joins the configured
    source by address only while the configured server's own identity cannot be read, and
    only when every such backup at that address names the same server; otherwise the other
    server's backups would take the configured database's places in retention."""
    ordered = sorted(
        (r for r in records if r.type == "database"), key=lambda r: (r.created_at, r.name)
    )
    groups: dict[str, SourceBackups] = {}
    identified: set[str] = set()  # identities recorded by backups at the configured address
    if configured is not None:
        groups[configured.id] = SourceBackups(
            configured.id, configured.label, configured=True, now=now
        )
        identified = {
            source_id_of(r)
            for r in ordered
            if _address_of(r) == configured.address and source_id_of(r) != _address_of(r)
        }
    unknown = configured is not None and configured.id == configured.address
    for record in ordered:
        key = source_id_of(record)
        if (
            configured is not None
            and _address_of(record) == configured.address
            and (key == _address_of(record) or unknown and len(identified) == 1)
        ):
            key = configured.id
        group = groups.setdefault(key, SourceBackups(key, record.source or key, now=now))
        group.backups.append(record)
    return sorted(groups.values(), key=lambda group: (not group.configured, group.label))
