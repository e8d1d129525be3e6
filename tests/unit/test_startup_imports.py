"""Short-lived commands pay only for what they use: loading the CLI imports none of the
services (``warroom --help`` and bad input are instant), the services build the workflow
engine, deployments, cleanup, tokens and the rest only when asked, and ``warroom wal push``
(PostgreSQL's archive_command) loads neither the CLI framework nor the catalog.

Which modules a fresh interpreter loaded is read in a subprocess: this test process has
imported everything already."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from warroom.config import Settings
from warroom.services import build_services

HEAVY = ("sqlalchemy", "pydantic", "psycopg", "warroom.services", "warroom.workflow")


def _loaded(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.split())


def _heavy(modules: set[str], heavy: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in heavy))


def test_loading_the_cli_imports_no_service() -> None:
    assert _heavy(_loaded("import warroom.cli.app"), HEAVY) == []


def test_the_wal_fast_path_imports_neither_the_cli_framework_nor_the_catalog() -> None:
    modules = _loaded("import warroom.cli, warroom.cli.wal_fast, warroom.wal")
    assert _heavy(modules, (*HEAVY, "typer", "click", "rich", "warroom.catalog")) == []


def test_services_are_built_on_first_use(tmp_path: Path) -> None:
    settings = Settings(
        backup_dir=tmp_path / "backups",
        checkpoint_dir=tmp_path,
        catalog_url=f"sqlite:///{tmp_path}/catalog.db",
    )
    with build_services(settings) as services:
        assert services.backups.repository is services.repository
        lazy = ("workflows", "deployments", "cleanup", "notifier", "pitr", "tokens")
        assert [name for name in lazy if name in vars(services)] == []
        # Deployments need the notifier and cleanup the workflow engine: one build each.
        assert services.deployments.notifier is services.notifier
        assert services.cleanup is services.cleanup
        assert [name for name in lazy if name not in vars(services)] == ["pitr", "tokens"]
