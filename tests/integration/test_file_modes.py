"""What warroom writes is private: every file and directory that a backup, a WAL push, a
workflow blob and the SQLite catalog create (walked, not sampled) is 0600/0700, and another
local user cannot read a part. With WARROOM_SHARED_GROUP the group shares them: 0640 data files,
0660 locks and catalog, 2770 directories, and PostgreSQL's OS user pushes WAL into the
repository the service created."""

from __future__ import annotations

import grp
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.e2e.cli import cli_env, run_warroom
from tests.pgcluster import warroom_for_postgres
from warroom import AutomationEngine
from warroom.config import Settings

SEGMENT = "000000010000000000000001"


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory every local user may traverse (pytest's tmp dirs are root-only), so only
    warroom's own modes keep them out."""
    path = Path(tempfile.mkdtemp(prefix="warroom-modes-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _everything_written(base: Path, pg_db: str, env: dict[str, str]) -> Iterator[None]:
    """A backup and a WAL push (through the CLI), then a workflow with a blob, whose catalog
    connection stays open for the block (so the catalog's -wal and -shm exist)."""
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE secrets AS SELECT 'token-' || i AS value FROM generate_series(1, 10) i"
        )
    created = run_warroom("create", "database", "--url", pg_db, "--name", "b1", env=env, cwd=base)
    assert created.code == 0, created.stderr
    segment = base / "pg_wal" / SEGMENT
    segment.parent.mkdir()
    segment.write_bytes(os.urandom(1 << 16))
    pushed = run_warroom("wal", "push", str(segment), env=env, cwd=base)
    assert pushed.code == 0, pushed.stderr
    shutil.rmtree(segment.parent)
    settings = Settings(
        catalog_url=env["WARROOM_CATALOG_URL"],
        checkpoint_dir=Path(env["CHECKPOINT_DIR"]),
        workflow_blob_threshold=10,
    )
    with AutomationEngine(settings=settings) as engine:

        @engine.step()
        def big() -> str:
            return "a state long enough to be stored as a blob"

        @engine.workflow("blob")
        def flow() -> str:
            return big()

        engine.execute_workflow("blob")
        yield


def _stats(*roots: Path) -> dict[str, os.stat_result]:
    """Every file and directory under ``roots``, the roots included, by path below ``base``."""
    found = {}
    for root in roots:
        for directory, dirs, files in os.walk(root):
            for name in [*dirs, *files]:
                path = Path(directory, name)
                found[str(path.relative_to(root.parent))] = os.lstat(path)
        found[root.name] = os.lstat(root)
    return found


def _run_as(user: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", user, "--", *command], capture_output=True, text=True, errors="replace"
    )


def _part(base: Path) -> Path:
    return base / "backups" / "database" / "b1" / "schema"


def _env(base: Path, **extra: str) -> dict[str, str]:
    return cli_env(base, WARROOM_CATALOG_URL=f"sqlite:///{base}/state/catalog.db", **extra)


def test_everything_written_is_private(base: Path, pg_db: str) -> None:
    roots = (base / "backups", base / "checkpoints", base / "state")
    with _everything_written(base, pg_db, _env(base)):
        found = _stats(*roots)
    names = set(found)
    for expected in (
        "state/catalog.db-wal",
        "backups/.locks",
        "backups/wal",
        "checkpoints/workflow",
    ):
        assert expected in names, sorted(names)
    for prefix in (
        "backups/database/b1/copy-",
        "backups/wal/00000001/",
        "checkpoints/workflow/blobs/",
    ):
        assert any(name.startswith(prefix) for name in names), prefix
    wrong = {
        name: oct(info.st_mode)
        for name, info in found.items()
        if stat.S_IMODE(info.st_mode) != (0o700 if stat.S_ISDIR(info.st_mode) else 0o600)
    }
    assert wrong == {}
    denied = _run_as("nobody", "cat", str(_part(base)))
    assert denied.returncode != 0 and "Permission denied" in denied.stderr


def test_a_shared_group_shares_the_repository_with_postgres(
    base: Path, pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARROOM_SHARED_GROUP", "postgres")
    group = grp.getgrnam("postgres").gr_gid
    env = _env(base, WARROOM_SHARED_GROUP="postgres")
    roots = (base / "backups", base / "checkpoints", base / "state")
    with _everything_written(base, pg_db, env):
        found = _stats(*roots)
    # PostgreSQL's OS user, a member of the group, archives into the service's repository.
    segment = base / "pg_wal" / "000000010000000000000002"
    segment.parent.mkdir()
    segment.write_bytes(os.urandom(1 << 16))
    shutil.chown(segment, "postgres", "postgres")
    runner = warroom_for_postgres(base)
    pushed = _run_as(
        "postgres",
        "sh",
        "-c",
        f"BACKUP_DIR={base / 'backups'} WARROOM_SHARED_GROUP=postgres {runner} wal push {segment}",
    )
    assert pushed.returncode == 0, pushed.stderr
    pushed_files = [p for p in (base / "backups" / "wal").rglob("*2*") if p.is_file()]
    assert {p.owner() for p in pushed_files} == {"postgres"}
    found |= _stats(*roots)

    def expected(name: str, mode: int) -> int:
        if stat.S_ISDIR(mode):
            return 0o2770
        return 0o660 if "/.locks/" in name or name.startswith("state/") else 0o640

    wrong = {
        name: oct(info.st_mode)
        for name, info in found.items()
        if stat.S_IMODE(info.st_mode) != expected(name, info.st_mode)
    }
    assert wrong == {}
    assert {info.st_gid for info in found.values()} == {group}
    assert _run_as("postgres", "cat", str(_part(base))).returncode == 0
    assert _run_as("nobody", "cat", str(_part(base))).returncode != 0
