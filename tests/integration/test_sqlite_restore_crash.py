"""A SQLite ``restore --target-url`` over a live database, attacked: the restoring process is
killed (SIGKILL, by the fault-injection hook ``WARROOM_FAULT_POINT=sqlite-copy``, which fires
inside the copy into the target after pages are written and before the commit) while the
application still holds committed rows in the target's ``-wal``. The target must keep every
committed row, its owner and its mode; the next restore sweeps what the killed one left and
never touches the staging file of a restore that is still running."""

from __future__ import annotations

import os
import pwd
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from tests.e2e.cli import cli_env, run_warroom
from warroom.locks import try_claim

ROWS = 3000  # about 3 MB: the copy into the target takes several steps of 256 pages
LATER = 100  # committed after the backup, and still only in the target's -wal


def _count(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if "warroom_restore_" in p.name)


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_killed_restore_keeps_every_committed_row_owner_and_mode(
    tmp_path: Path, journal_mode: str
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    target = app_dir / "app.db"
    with closing(sqlite3.connect(target)) as conn:
        conn.execute(f"PRAGMA journal_mode={journal_mode}")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)")
        conn.executemany(
            "INSERT INTO t (payload) VALUES (?)", [(os.urandom(1000),) for _ in range(ROWS)]
        )
        conn.commit()
    nobody = pwd.getpwnam("nobody")
    os.chown(target, nobody.pw_uid, nobody.pw_gid)
    target.chmod(0o600)
    url = f"sqlite:///{target}"
    env = cli_env(tmp_path)
    created = run_warroom(
        "create", "database", "--url", url, "--name", "good", env=env, cwd=tmp_path
    )
    assert created.code == 0, created.stderr

    # The application is still running: its later rows are committed, not checkpointed.
    app = sqlite3.connect(target)
    app.execute("PRAGMA wal_autocheckpoint=0")
    with app:
        app.executemany("INSERT INTO t (payload) VALUES (?)", [(b"later",) for _ in range(LATER)])
    if journal_mode == "wal":
        assert (app_dir / "app.db-wal").stat().st_size > 0

    restore = ("restore", "database", "good", "--target-url", url, "--yes")
    killed = run_warroom(*restore, env={**env, "WARROOM_FAULT_POINT": "sqlite-copy"}, cwd=tmp_path)
    assert killed.code == -9, killed.stderr  # the hook fired inside the copy
    assert _count(target) == ROWS + LATER
    assert app.execute("SELECT count(*) FROM t").fetchone() == (ROWS + LATER,)
    assert _leftovers(app_dir)  # the killed restore's staging file and claim

    done = run_warroom(*restore, env=env, cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert _count(target) == ROWS
    assert app.execute("SELECT count(*) FROM t").fetchone() == (ROWS,)  # it sees the restore
    app.close()
    assert _leftovers(app_dir) == []
    info = target.stat()
    assert (info.st_uid, info.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert stat.S_IMODE(info.st_mode) == 0o600
    with closing(sqlite3.connect(target)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == (journal_mode,)


def test_a_running_restores_staging_is_never_swept(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    target = app_dir / "app.db"
    with closing(sqlite3.connect(target)) as conn, conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    env = cli_env(tmp_path)
    url = f"sqlite:///{target}"
    created = run_warroom("create", "database", "--url", url, "--name", "b", env=env, cwd=tmp_path)
    assert created.code == 0, created.stderr
    abandoned, running = "warroom_restore_0123456789ab", "warroom_restore_ba9876543210"
    for name in (abandoned, running):
        (app_dir / name).write_bytes(b"staging")
        (app_dir / f".{name}.tmp123").write_bytes(b"half-loaded")
    (app_dir / f"{abandoned}.claim").write_bytes(b"")  # its process was killed
    with try_claim(app_dir / f"{running}.claim") as claimed:  # this one's process is alive
        assert claimed
        done = run_warroom(
            "restore", "database", "b", "--target-url", url, "--yes", env=env, cwd=tmp_path
        )
        assert done.code == 0, done.stderr
        assert _leftovers(app_dir) == [f".{running}.tmp123", running, f"{running}.claim"]
    assert _leftovers(app_dir) == [f".{running}.tmp123", running]
