"""The composition root: settings in, every service out, each built once and passed down."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from warroom.auth import TokenStore
from warroom.catalog import Catalog, open_catalog
from warroom.catalog.legacy import adopt_old_catalog
from warroom.cleanup import CleanupService
from warroom.config import Settings, default_catalog_url
from warroom.database.backups import BackupService
from warroom.database.pitr import PointInTimeRecovery
from warroom.deployment.service import DeploymentService
from warroom.notify import Notifier
from warroom.repository import Repository, Storage, open_locker, open_repository
from warroom.wal import WalArchive
from warroom.workflow import AutomationEngine

__all__ = ["Services", "build_services"]

log = logging.getLogger("warroom")


@dataclass
class Services:
    """Everything the faces (CLI, API, web UI) call, through :mod:`warroom.app`. Close it (or
    use ``with``) when done."""

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
    tokens: TokenStore

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


def _catalog_url(settings: Settings) -> str:
    """The configured catalog; at the default location, one left at the old default (see
    :mod:`warroom.catalog.legacy`) is moved there or used, with a notice on the log."""
    if not isinstance(settings.checkpoint_dir, Path) or settings.catalog_url != (
        default_catalog_url(settings.checkpoint_dir)
    ):
        return settings.catalog_url
    path, notice = adopt_old_catalog(settings.checkpoint_dir / "catalog.db")
    if notice:
        log.warning("warroom: %s", notice)
    return f"sqlite:///{path}"


def build_services(settings: Settings | None = None) -> Services:
    settings = settings or Settings.load()
    catalog = open_catalog(_catalog_url(settings))
    repository = open_repository(
        settings.backup_dir,
        settings.master_keys(),
        [replica.location for replica in settings.replica_settings()],
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
        deployments=DeploymentService(settings, catalog, backups, locker=locker, notifier=notifier),
        cleanup=CleanupService(settings, catalog, backups, workflows, wal),
        notifier=notifier,
        wal=wal,
        pitr=PointInTimeRecovery(backups, wal),
        tokens=TokenStore(catalog),
    )
