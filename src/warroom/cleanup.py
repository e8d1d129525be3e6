"""Cleanup: apply the retention policy to every kind of checkpoint and remove leftovers.

The plan comes from :mod:`warroom.retention` (pure); this module gathers its inputs and carries
it out. A database checkpoint is deleted in the order that keeps every listed checkpoint
restorable if the cleanup is interrupted: catalog row, then manifest (from here on the backup
does not exist), then its parts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from warroom.catalog import Catalog
from warroom.config import Settings
from warroom.database.backups import BackupService
from warroom.errors import InputError
from warroom.retention import Candidate, Policy, plan_retention
from warroom.wal import WalArchive
from warroom.workflow import AutomationEngine

__all__ = ["CleanupService"]


def _now() -> datetime:
    return datetime.now(UTC)


class CleanupService:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        backups: BackupService,
        workflows: AutomationEngine,
        wal: WalArchive,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.backups = backups
        self.workflows = workflows
        self.wal = wal
        self.clock = clock

    def policy(self, days: int | None) -> Policy:
        if days is not None and days < 0:
            raise InputError(f"days must be 0 or more, not {days}")
        s = self.settings
        return Policy(
            keep_days=s.checkpoint_retention_days if days is None else days,
            keep_last=s.retention_keep_last,
            daily=s.retention_daily,
            weekly=s.retention_weekly,
            monthly=s.retention_monthly,
        )

    def _rollback_targets(self) -> set[str]:
        """Pre-deploy checkpoints that the latest deployment's rollback would restore."""
        for record in reversed(self.catalog.list_checkpoints("deployment")):
            checkpoint = record.details.get("stages", {}).get("backup", {}).get("checkpoint")
            if checkpoint:
                return {str(checkpoint)}
        return set()

    def _trim_wal(self) -> list[str]:
        """Remove archived WAL that no kept physical base backup needs."""
        kept = [
            self.backups.manifest(record.name).database.get("start_wal")
            for record in self.catalog.list_checkpoints("database")
            if record.details.get("kind") == "physical"
        ]
        # By segment number: a newer timeline may branch from an earlier position.
        oldest_needed = min(filter(None, kept), key=lambda name: name[8:], default=None)
        return self.wal.delete_before(oldest_needed) if oldest_needed else []

    def run(self, days: int | None = None, dry_run: bool = False) -> dict[str, Any]:
        """Plan, and unless ``dry_run``, carry out the cleanup; return the plan and results."""
        policy, now = self.policy(days), self.clock()
        candidates = {
            kind: [
                Candidate(kind, r.name, r.created_at, r.status)
                for r in self.catalog.list_checkpoints(kind)
            ]
            for kind in ("database", "deployment")
        }
        database = plan_retention(candidates["database"], policy, now, self._rollback_targets())
        deployment = plan_retention(candidates["deployment"], policy, now)
        expired = self.workflows.expired_executions(policy.keep_days)
        report: dict[str, Any] = {
            "dry_run": dry_run,
            "policy": policy.__dict__,
            "database": database.to_dict(),
            "deployment": deployment.to_dict(),
            "workflow": {"delete": expired},
        }
        if dry_run:
            return report
        for candidate, _ in database.delete:
            self.backups.delete(candidate.name)
        for candidate, _ in deployment.delete:
            self.catalog.delete_checkpoint("deployment", candidate.name)
        report["workflow"]["deleted"] = self.workflows.cleanup(policy.keep_days)
        report["wal_removed"] = self._trim_wal()
        report["leftovers_removed"] = self.backups.sweep_leftovers()
        return report
