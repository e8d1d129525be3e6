"""Failures of the file system under the catalog and the lock files are clear StorageErrors
(exit 1) naming the path and the reason, never "unexpected failure ... bug". A full disk and a
read-only file system are real: a 1 MiB tmpfs mounted for the test (filled, or remounted
read-only); a directory that may not be written is a real one too."""

from __future__ import annotations

import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cli import cli_env, run_warroom, warroom_command
from warroom.storage.files import os_reason


@pytest.fixture
def tiny_disk() -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted afterwards."""
    mount_point = Path(tempfile.mkdtemp(prefix="warroom-tiny-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)
        mount_point.rmdir()


def _fill(disk: Path) -> None:
    with open(disk / "filler", "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def _read_only(disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)


def _sqlite_source(tmp_path: Path) -> str:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(tmp_path / "app.db")) as conn, conn:
        conn.execute("CREATE TABLE t (x)")
    return f"sqlite:///{tmp_path / 'app.db'}"


def _assert_clear(result_code: int, stderr: str, *expected: str) -> None:
    assert result_code == 1, stderr
    assert "bug" not in stderr and "unexpected" not in stderr, stderr
    for text in expected:
        assert text in stderr, stderr


def test_a_new_catalog_on_a_full_or_read_only_disk(tmp_path: Path, tiny_disk: Path) -> None:
    env = cli_env(tmp_path, WARROOM_CATALOG_URL=f"sqlite:///{tiny_disk}/state/catalog.db")
    _fill(tiny_disk)
    full = run_warroom("list", env=env, cwd=tmp_path)
    _assert_clear(full.code, full.stderr, "the disk is full", str(tiny_disk))
    _read_only(tiny_disk)
    read_only = run_warroom("list", env=env, cwd=tmp_path)
    _assert_clear(read_only.code, read_only.stderr, "the file system is read-only", str(tiny_disk))


def test_an_existing_catalog_filling_up(tmp_path: Path, tiny_disk: Path) -> None:
    env = cli_env(tmp_path, WARROOM_CATALOG_URL=f"sqlite:///{tiny_disk}/catalog.db")
    assert run_warroom("list", env=env, cwd=tmp_path).code == 0
    _fill(tiny_disk)
    created = run_warroom(
        "token", "create", "--role", "viewer", "--name", "t", env=env, cwd=tmp_path
    )
    _assert_clear(created.code, created.stderr, "catalog", "the disk is full", str(tiny_disk))


def test_lock_files_on_a_full_or_read_only_disk(tmp_path: Path, tiny_disk: Path) -> None:
    env = cli_env(tmp_path, BACKUP_DIR=str(tiny_disk / "backups"))
    source = _sqlite_source(tmp_path)
    _fill(tiny_disk)
    full = run_warroom("create", "database", "--url", source, env=env, cwd=tmp_path)
    _assert_clear(full.code, full.stderr, "lock file", "the disk is full", str(tiny_disk))
    _read_only(tiny_disk)
    env["BACKUP_DIR"] = str(tiny_disk / "elsewhere")
    read_only = run_warroom("create", "database", "--url", source, env=env, cwd=tmp_path)
    _assert_clear(read_only.code, read_only.stderr, "the file system is read-only", str(tiny_disk))


def test_a_catalog_and_locks_where_the_user_may_not_write(tmp_path: Path) -> None:
    """Root without CAP_DAC_OVERRIDE (setpriv) obeys a directory's mode like any user."""
    denied = tmp_path / "denied"
    denied.mkdir(mode=0o555)
    command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    for variable, command_args in (
        ("WARROOM_CATALOG_URL", ("list",)),
        ("BACKUP_DIR", ("create", "database", "--url", _sqlite_source(tmp_path))),
    ):
        env = cli_env(tmp_path)
        env[variable] = (
            f"sqlite:///{denied}/catalog.db" if variable != "BACKUP_DIR" else str(denied)
        )
        done = subprocess.run(
            [*command, *warroom_command(*command_args)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        _assert_clear(
            done.returncode, done.stderr, "permission denied (running as root)", str(denied)
        )


def test_a_quota_is_named_too() -> None:
    assert os_reason(OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))) == (
        "the disk quota is exhausted"
    )
