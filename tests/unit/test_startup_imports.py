"""Short-lived commands pay only for what they use: loading the CLI imports none of the
services (``warroom --help`` and bad input are instant), the services build the workflow
engine, deployments, cleanup, tokens and the rest only when asked, and ``warroom wal push``
(PostgreSQL's archive_command) loads neither the CLI framework nor the catalog.

Which modules a fresh interpreter loaded is read in a subprocess: this test process has
imported everything already."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from warroom.cli import main
from warroom.config import Settings
from warroom.services import build_services

HEAVY = ("sqlalchemy", "pydantic", "psycopg", "warroom.services", "warroom.workflow")


def _loaded(code: str, env: dict[str, str] | None = None) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        env=None if env is None else {**os.environ, **env},
    )
    return set(done.stdout.split())


def _heavy(modules: set[str], heavy: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in heavy))


def test_loading_the_cli_imports_no_service() -> None:
    assert _heavy(_loaded("import warroom.cli.app"), HEAVY) == []


def test_the_wal_fast_path_imports_neither_the_cli_framework_nor_the_catalog() -> None:
    modules = _loaded("import warroom.cli, warroom.cli.wal_fast, warroom.wal")
    assert _heavy(modules, (*HEAVY, "typer", "click", "rich", "warroom.catalog")) == []


def test_a_local_wal_push_imports_only_what_it_uses(tmp_path: Path) -> None:
    """Each of these cost a push milliseconds: dataclasses (WARROOM_REPLICAS' parser, 5 ms
    with inspect), logging and concurrent.futures (an upload's thread pool)."""
    segment = tmp_path / "000000010000000000000001"
    segment.write_bytes(os.urandom(1 << 16) + bytes(1 << 20))
    code = (
        "from warroom.cli.wal_fast import run_wal_command\n"
        f"assert run_wal_command(['push', {str(segment)!r}]) == 0"
    )
    modules = _loaded(code, {"BACKUP_DIR": str(tmp_path / "repo")})
    assert "warroom.wal" in modules
    assert _heavy(modules, ("dataclasses", "logging", "concurrent")) == []


def test_the_wal_fast_path_exits_without_finalization(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The interpreter's finalization cost each push 7 ms: the fast path ends with
    ``os._exit``, once what it wrote to stdout and stderr is flushed."""
    exits: list[int] = []

    def fake_exit(code: int) -> None:
        exits.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(os, "_exit", fake_exit)
    monkeypatch.setattr(sys, "argv", ["warroom", "wal", "push", str(tmp_path / "missing")])
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path / "repo"))
    with pytest.raises(SystemExit):
        main()
    assert exits == [1]
    assert "is not a WAL file name" in capsys.readouterr().err


def test_building_the_services_opens_no_catalog(tmp_path: Path) -> None:
    """A backup or a restore records its result in the catalog only at its end and opens it
    beside its work: building the services neither imports SQLAlchemy nor creates the file;
    nor, without an encryption key, cryptography."""
    code = (
        "from warroom.services import build_services\n"
        "with build_services() as services:\n"
        "    services.backups.exists('x')"
    )
    modules = _loaded(code, {"BACKUP_DIR": str(tmp_path / "b"), "CHECKPOINT_DIR": str(tmp_path)})
    assert _heavy(modules, ("sqlalchemy", "warroom.catalog.store", "cryptography")) == []
    assert not (tmp_path / "catalog.db").exists()


def test_services_are_built_on_first_use(tmp_path: Path) -> None:
    settings = Settings(
        backup_dir=tmp_path / "backups",
        checkpoint_dir=tmp_path,
        catalog_url=f"sqlite:///{tmp_path}/catalog.db",
    )
    with build_services(settings) as services:
        assert services.backups.repository is services.repository
        lazy = ("catalog", "workflows", "deployments", "cleanup", "notifier", "pitr", "tokens")
        assert [name for name in lazy if name in vars(services)] == []
        # Deployments need the notifier and cleanup the workflow engine: one build each.
        assert services.deployments.notifier is services.notifier
        assert services.cleanup is services.cleanup
        assert [name for name in lazy if name not in vars(services)] == ["pitr", "tokens"]
        assert services.backups.catalog is services.catalog
