"""Cleanup: apply the retention policy to every kind of checkpoint and remove leftovers.

The plan comes from :mod:`warroom.retention` (pure, per source); this module gathers its inputs
(each backup's source as :mod:`warroom.sources` groups them) and carries it out. A database
checkpoint is deleted in the order that keeps every listed checkpoint restorable if the cleanup
is interrupted: catalog row, then manifest (from here on the backup does not exist), then its
parts.

With replicas (WARROOM_REPLICAS) each repository is planned on its own, with its own rule (see
:mod:`warroom.repository.replicas`), over the backups it holds, and with the same protections:
a source's newest restore-tested and newest intact backup there are never deleted. A backup
goes from one repository only (manifest, then parts) while another still keeps it, and stays
listed and restorable from there; its catalog row goes with its last copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from warroom.catalog import Catalog
from warroom.config import Settings
from warroom.database.backups import BackupService
from warroom.errors import InputError
from warroom.repository import Repository
from warroom.retention import Candidate, Plan, Policy, plan_retention
from warroom.sources import group_by_source
from warroom.wal import WalArchive
from warroom.workflow import AutomationEngine

__all__ = ["CleanupReport", "CleanupService"]


def _now() -> datetime:
    return datetime.now(UTC)


class WorkflowCleanup(TypedDict):
    delete: list[str]
    deleted: NotRequired[list[str]]


class RepositoryPlan(TypedDict):
    """One repository's retention: its ``policy`` and its ``database`` plan per source."""

    location: str
    policy: dict[str, Any]
    database: dict[str, Any]


class CleanupReport(TypedDict):
    """The plan (``database`` per source, ``deployment``, ``workflow``, each deletion with its
    reason) and, unless a dry run, what was removed: the ``deleted`` executions, WAL and the
    leftovers of interrupted backups. ``database`` is BACKUP_DIR's plan; ``repositories``
    has each repository's (BACKUP_DIR first, then the replicas)."""

    dry_run: bool
    policy: dict[str, Any]
    database: dict[str, Any]
    repositories: list[RepositoryPlan]
    deployment: dict[str, Any]
    workflow: WorkflowCleanup
    wal_removed: NotRequired[list[str]]
    leftovers_removed: NotRequired[list[str]]


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
            safety_days=s.safety_retention_days,
        )

    def _rollback_targets(self) -> dict[str, str]:
        """The pre-deploy checkpoint that the latest deployment's rollback would restore."""
        for record in reversed(self.catalog.list_checkpoints("deployment")):
            checkpoint = record.details.get("stages", {}).get("backup", {}).get("checkpoint")
            if checkpoint:
                return {str(checkpoint): "a deployment refers to it for rollback"}
        return {}

    def _database_candidates(self) -> tuple[list[Candidate], dict[str, str]]:
        """Every database backup as retention sees it, and each source's label."""
        groups = group_by_source(
            self.catalog.list_checkpoints("database"),
            self.backups.configured_source(),
            self.clock(),
        )
        candidates = [
            Candidate("database", r.name, r.created_at, r.status, group.id, r.safety)
            for group in groups
            for r in group.backups
        ]
        return candidates, {group.id: group.label for group in groups}

    def _copy_plans(
        self, policy: Policy, now: datetime, candidates: list[Candidate]
    ) -> list[tuple[Repository, Policy, Plan]]:
        """Each repository's copy, its policy (BACKUP_DIR's, with a replica's overrides) and
        its plan over the backups it holds. A backup the catalog lists and no repository
        holds is planned with BACKUP_DIR's, as without replicas."""
        policies = self._policies(policy)
        held = [self.backups.names_on(copy) for copy, _ in policies]
        held[0] |= {c.name for c in candidates} - set().union(*held)
        protected = self._rollback_targets()
        plans = []
        for (copy, here), names in zip(policies, held, strict=True):
            mine = [c for c in candidates if c.name in names]
            plans.append((copy, here, plan_retention(mine, here, now, protected)))
        return plans

    def _policies(self, policy: Policy) -> list[tuple[Repository, Policy]]:
        """Each repository's copy (BACKUP_DIR first) and its policy: ``policy``, with the
        settings a replica overrides."""
        rules = [{}, *(replica.retention for replica in self.settings.replica_settings())]
        return [
            (copy, replace(policy, **rule))
            for copy, rule in zip(self.backups.repository.copies(), rules, strict=True)
        ]

    def unwanted(self) -> dict[str, set[str]]:
        """Per repository location, the backups its own retention would delete if it held
        every backup: ``repo sync`` does not copy those there (cleanup would delete them
        again)."""
        candidates, _ = self._database_candidates()
        now, protected = self.clock(), self._rollback_targets()
        return {
            copy.location: {
                c.name for c, _ in plan_retention(candidates, here, now, protected).delete
            }
            for copy, here in self._policies(self.policy(None))
        }

    def _delete_database(self, plans: list[tuple[Repository, Policy, Plan]]) -> None:
        """Carry out each repository's plan: a backup no repository keeps is deleted whole
        (catalog row first), one that some repository keeps only from the others."""
        kept = {c.name for _, _, plan in plans for c, _ in plan.keep}
        gone = {c.name for _, _, plan in plans for c, _ in plan.delete} - kept
        for name in sorted(gone):
            self.backups.delete(name)
        for copy, _, plan in plans:
            for candidate, _ in plan.delete:
                if candidate.name not in gone:
                    self.backups.delete_from(candidate.name, copy)

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

    def run(self, days: int | None = None, dry_run: bool = False) -> CleanupReport:
        """Plan, and unless ``dry_run``, carry out the cleanup; return the plan and results."""
        policy, now = self.policy(days), self.clock()
        deployments = [
            Candidate("deployment", r.name, r.created_at, r.status)
            for r in self.catalog.list_checkpoints("deployment")
        ]
        candidates, labels = self._database_candidates()
        plans = self._copy_plans(policy, now, candidates)
        deployment = plan_retention(deployments, policy, now)
        expired = self.workflows.expired_executions(policy.keep_days)
        repositories: list[RepositoryPlan] = [
            {
                "location": copy.location,
                "policy": rule.__dict__,
                "database": plan.to_dict_by_source(labels),
            }
            for copy, rule, plan in plans
        ]
        report: CleanupReport = {
            "dry_run": dry_run,
            "policy": policy.__dict__,
            "database": repositories[0]["database"],
            "repositories": repositories,
            "deployment": deployment.to_dict(),
            "workflow": {"delete": expired},
        }
        if dry_run:
            return report
        self._delete_database(plans)
        for candidate, _ in deployment.delete:
            self.catalog.delete_checkpoint("deployment", candidate.name)
        report["workflow"]["deleted"] = self.workflows.cleanup(policy.keep_days)
        report["wal_removed"] = self._trim_wal()
        report["leftovers_removed"] = self.backups.sweep_leftovers()
        return report
