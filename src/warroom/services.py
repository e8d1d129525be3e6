"""The composition root: settings in, every service out, each built once and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from warroom.catalog import Catalog, open_catalog
from warroom.cleanup import CleanupService
from warroom.config import Settings
from warroom.database.backups import BackupService
from warroom.database.pitr import PointInTimeRecovery
from warroom.deployment.service import DeploymentService
from warroom.notify import Notifier
from warroom.repository import Repository, Storage, open_locker, open_repository
from warroom.wal import WalArchive
from warroom.workflow import AutomationEngine

__all__ = ["Services", "build_services"]


@dataclass
class Services:
    """Everything the adapters (CLI, API) call. Close it (or use ``with``) when done."""

    settings: Settings
    catalog: Catalog
    backup_storage: Storage
    repository: Repository
    backups: BackupService
    workflows: AutomationEngine
    deployments: DeploymentService
    cleanup: CleanupService
    notifier: Notifier
    wal: WalArchive
    pitr: PointInTimeRecovery

    def close(self) -> None:
        self.workflows.close()
        self.catalog.close()

    def __enter__(self) -> Services:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def build_services(settings: Settings | None = None) -> Services:
    settings = settings or Settings.load()
    catalog = open_catalog(settings.catalog_url)
    repository = open_repository(
        settings.backup_dir, settings.master_keys(), settings.replica_urls()
    )
    locker = open_locker(settings.backup_dir)
    backups = BackupService(settings, repository, catalog, locker)
    workflows = AutomationEngine(settings=settings, catalog=catalog)
    notifier = Notifier.from_setting(settings.webhook_urls)
    wal = WalArchive(repository)
    return Services(
        settings=settings,
        catalog=catalog,
        backup_storage=repository.storage,
        repository=repository,
        backups=backups,
        workflows=workflows,
        deployments=DeploymentService(
            settings, catalog, backups, locker=locker, notifier=notifier
        ),
        cleanup=CleanupService(settings, catalog, backups, workflows, wal),
        notifier=notifier,
        wal=wal,
        pitr=PointInTimeRecovery(backups, wal),
    )
