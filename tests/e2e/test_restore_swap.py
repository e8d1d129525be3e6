"""``restore --target-url ... --yes`` cut at each dangerous moment of the swap: the process
killed with SIGKILL, hung up (SIGHUP), or the server crashed (``pg_ctl stop -m immediate``), at
fault points in PostgresEngine._swap. Each on a throwaway cluster of its own, so the work
databases left on it are this test's alone. Whatever happens, the target accepts connections
and holds the old rows or the new ones; the next restore drops what was left and says so."""

from __future__ import annotations

import shlex
import signal
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.e2e.cli import Result, cli_env, run_warroom
from tests.pgcluster import Cluster, throwaway_cluster
from warroom.database.postgres import WORK_CLAIM_KEY

TARGET = "prod"
# Each fault point, with the rows the target holds when the process dies there.
POINTS = {"swap-locked": "old", "swap-renamed": "old", "swap-committed": "new"}


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster(auth="trust", conf={"max_prepared_transactions": "2"}) as made:
        with psycopg.connect(made.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {TARGET}")
        with psycopg.connect(made.url(TARGET), autocommit=True) as conn:
            conn.execute("CREATE TABLE marker (v text)")
            conn.execute("INSERT INTO marker VALUES ('new')")
        yield made


@pytest.fixture
def env(tmp_path: Path, cluster: Cluster) -> dict[str, str]:
    """A backup "fresh" of the target holding 'new'; the target now holds 'old'."""
    env = cli_env(tmp_path, DATABASE_URL=cluster.url(TARGET))
    created = run_warroom("create", "database", "--name", "fresh", env=env, cwd=tmp_path)
    assert created.code == 0, created.stderr
    with psycopg.connect(cluster.url(TARGET), autocommit=True) as conn:
        conn.execute("UPDATE marker SET v = 'old'")
    return env


def _restore(env: dict[str, str], cwd: Path, **fault: str) -> Result:
    return run_warroom(
        "restore", "database", "fresh", "--target-url", env["DATABASE_URL"], "--yes",
        env={**env, **fault}, cwd=cwd, hang_up=True,
    )  # fmt: skip


def _work_databases(cluster: Cluster) -> list[str]:
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname ~ '^warroom_' ORDER BY 1"
        ).fetchall()
    return [name for (name,) in rows]


def _target(cluster: Cluster) -> tuple[bool, str]:
    """Whether the target allows connections, and its marker (connecting proves it)."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT datallowconn FROM pg_database WHERE datname = %s", (TARGET,)
        ).fetchone()
    with psycopg.connect(cluster.url(TARGET), autocommit=True) as conn:
        marker = conn.execute("SELECT v FROM marker").fetchone()
    assert row is not None and marker is not None
    return bool(row[0]), str(marker[0])


def _wait_for_claims(cluster: Cluster, names: list[str]) -> None:
    """Wait until the dead process's server sessions have ended (and their claims with them):
    taking each claim blocks until then."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        for name in names:
            conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (WORK_CLAIM_KEY, name))
            conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (WORK_CLAIM_KEY, name))


def _next_restore_repairs(cluster: Cluster, env: dict[str, str], cwd: Path) -> None:
    left = _work_databases(cluster)
    _wait_for_claims(cluster, left)
    again = _restore(env, cwd)
    assert again.code == 0, again.stderr
    for name in left:
        assert f"dropped {name}, left by an interrupted restore" in again.stderr
    assert _work_databases(cluster) == []
    assert _target(cluster) == (True, "new")


@pytest.mark.parametrize("point", sorted(POINTS))
def test_a_restore_killed_in_the_swap_leaves_the_target_usable(
    cluster: Cluster, env: dict[str, str], tmp_path: Path, point: str
) -> None:
    with psycopg.connect(cluster.url(TARGET), autocommit=True):  # an application's session
        killed = _restore(env, tmp_path, WARROOM_FAULT_POINT=point)
    assert killed.code == -signal.SIGKILL, killed.stderr
    assert _target(cluster) == (True, POINTS[point])
    assert len(_work_databases(cluster)) == 1  # the staging database, or the retired one
    _next_restore_repairs(cluster, env, tmp_path)


@pytest.mark.parametrize("point", sorted(POINTS))
def test_a_server_crash_in_the_swap_leaves_the_target_usable(
    cluster: Cluster, env: dict[str, str], tmp_path: Path, point: str
) -> None:
    crash = shlex.join(cluster.crash())
    cut = _restore(env, tmp_path, WARROOM_FAULT_POINT=point, WARROOM_FAULT_COMMAND=crash)
    assert cut.code == 1, cut.stderr
    cluster.start()
    assert _target(cluster) == (True, POINTS[point])
    _next_restore_repairs(cluster, env, tmp_path)


def test_a_hang_up_during_the_swap_waits_until_it_is_done(
    cluster: Cluster, env: dict[str, str], tmp_path: Path
) -> None:
    hung_up = _restore(
        env, tmp_path, WARROOM_FAULT_POINT="swap-locked", WARROOM_FAULT_COMMAND="kill -HUP $PPID"
    )
    assert hung_up.code == -signal.SIGHUP, hung_up.stderr
    assert _target(cluster) == (True, "new")
    assert _work_databases(cluster) == []  # swapped, and the old database dropped


def test_a_session_that_cannot_end_makes_the_swap_fail_with_the_target_unchanged(
    cluster: Cluster, env: dict[str, str], tmp_path: Path
) -> None:
    """A prepared transaction holds the database and no terminate ends it: every attempt
    rolls back, and the restore fails saying the target is unchanged."""
    with psycopg.connect(cluster.url(TARGET), autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO marker VALUES ('prepared')")
        conn.execute("PREPARE TRANSACTION 'held'")
    try:
        refused = _restore(env, tmp_path)
        assert refused.code == 1
        assert "could not replace" in refused.stderr and "unchanged" in refused.stderr
        assert "prepared transaction" in refused.stderr
        assert _target(cluster) == (True, "old")
        assert _work_databases(cluster) == []  # the staging database is dropped on the way out
    finally:
        with psycopg.connect(cluster.url(TARGET), autocommit=True) as conn:
            conn.execute("ROLLBACK PREPARED 'held'")
