"""The composition root: settings in, every service out, each built once and passed down.

What a backup needs (the repository, the backups and the WAL archive) is built at once; the
rest (the catalog, workflows, deployments, cleanup, notifications, point-in-time recovery,
tokens) on first use, with its imports, so a short-lived command pays only for what it uses.
The catalog is among them: importing SQLAlchemy and migrating take 0.1-0.2 s, and a backup or
a restore needs it only to record its result, so it opens it beside its work
(:class:`~warroom.database.backups.BackupService`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from warroom.catalog.legacy import adopt_old_catalog
from warroom.config import Settings, default_catalog_url
from warroom.database.backups import BackupService
from warroom.repository import Locker, Repository, Storage, open_locker, open_repository
from warroom.wal import WalArchive

if TYPE_CHECKING:
    from warroom.auth import TokenStore
    from warroom.catalog import Catalog
    from warroom.cleanup import CleanupService
    from warroom.database.pitr import PointInTimeRecovery
    from warroom.deployment.service import DeploymentService
    from warroom.notify import Notifier
    from warroom.workflow import AutomationEngine

__all__ = ["Services", "build_services"]

log = logging.getLogger("warroom")

T = TypeVar("T")


class _OnFirstUse(Generic[T]):
    """A service built by ``build(services)`` on first access, once even when threads of the
    service ask for it together."""

    def __init__(self, build: Callable[[Services], T]) -> None:
        self._build = build

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, services: None, owner: type) -> _OnFirstUse[T]: ...

    @overload
    def __get__(self, services: Services, owner: type) -> T: ...

    def __get__(self, services: Services | None, owner: type) -> T | _OnFirstUse[T]:
        if services is None:
            return self
        built: dict[str, Any] = services.__dict__
        if self._name not in built:
            with services._building:
                if self._name not in built:
                    built[self._name] = self._build(services)
        value: T = built[self._name]
        return value


def _catalog(services: Services) -> Catalog:
    from warroom.catalog import open_catalog

    return open_catalog(_catalog_url(services.settings))


def _workflows(services: Services) -> AutomationEngine:
    from warroom.workflow import AutomationEngine

    return AutomationEngine(settings=services.settings, catalog=services.catalog)


def _notifier(services: Services) -> Notifier:
    from warroom.notify import Notifier

    return Notifier.from_setting(services.settings.webhook_urls)


def _deployments(services: Services) -> DeploymentService:
    from warroom.deployment.service import DeploymentService

    return DeploymentService(
        services.settings,
        services.catalog,
        services.backups,
        locker=services.locker,
        notifier=services.notifier,
    )


def _cleanup(services: Services) -> CleanupService:
    from warroom.cleanup import CleanupService

    return CleanupService(
        services.settings, services.catalog, services.backups, services.workflows, services.wal
    )


def _pitr(services: Services) -> PointInTimeRecovery:
    from warroom.database.pitr import PointInTimeRecovery

    return PointInTimeRecovery(services.backups, services.wal)


def _tokens(services: Services) -> TokenStore:
    from warroom.auth import TokenStore

    return TokenStore(services.catalog)


class Services:
    """Everything the faces (CLI, API, web UI) call, through :mod:`warroom.app`. Close it (or
    use ``with``) when done."""

    catalog = _OnFirstUse(_catalog)
    workflows = _OnFirstUse(_workflows)
    notifier = _OnFirstUse(_notifier)
    deployments = _OnFirstUse(_deployments)
    cleanup = _OnFirstUse(_cleanup)
    pitr = _OnFirstUse(_pitr)
    tokens = _OnFirstUse(_tokens)

    def __init__(
        self,
        settings: Settings,
        repository: Repository,
        locker: Locker,
    ) -> None:
        self.settings = settings
        self.repository = repository
        self.backup_storage: Storage = repository.storage
        self.locker = locker
        self.backups = BackupService(settings, repository, lambda: self.catalog, locker)
        self.wal = WalArchive(repository)
        self._building = threading.RLock()  # a service built may need another

    def close(self) -> None:
        if "workflows" in self.__dict__:
            self.workflows.close()
        if "catalog" in self.__dict__:
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
    repository = open_repository(
        settings.backup_dir,
        settings.master_keys(),
        [replica.location for replica in settings.replica_settings()],
    )
    return Services(settings, repository, open_locker(settings.backup_dir))
