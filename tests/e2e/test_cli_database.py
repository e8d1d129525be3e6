"""The database-checkpoint commands, run as a user runs them: a subprocess with env settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import pg_database_exists, pg_url
from tests.dbcompare import pg_snapshot
from tests.e2e.cli import cli_env, run_warroom, warroom_command


@pytest.fixture
def env(tmp_path: Path, pg_db: str) -> dict[str, str]:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE small (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO small SELECT g, md5(g::text) FROM generate_series(1, 500) g")
        conn.execute("CREATE TABLE other (id int)")
        conn.execute("INSERT INTO other SELECT generate_series(1, 100)")
        conn.execute("CREATE SEQUENCE counter")
    return cli_env(tmp_path, DATABASE_URL=pg_db)


def test_create_list_verify_restore(
    env: dict[str, str], tmp_path: Path, pg_db: str, pg_names: list[str]
) -> None:
    created = run_warroom(
        "create", "database", "--name", "nightly", "--json", env=env, cwd=tmp_path
    )
    assert created.code == 0, created.stderr
    document = created.json()
    assert document["name"] == "nightly" and document["tables"]["public.small"] == 500
    assert "backing up" in created.stderr  # progress goes to stderr, never stdout

    listed = run_warroom("list", "--type", "database", "--json", env=env, cwd=tmp_path)
    [row] = listed.json()["checkpoints"]
    assert row["name"] == "nightly" and row["status"] == "completed"
    assert row["size_stored"] > 0 and row["size_original"] > row["size_stored"]
    assert len(row["checksum"]) == 64 and row["source"] == pg_db

    human = run_warroom("list", env=env, cwd=tmp_path)
    assert human.code == 0 and "nightly" in human.stdout and "database" in human.stdout

    verified = run_warroom("verify", "nightly", "--restore-test", env=env, cwd=tmp_path)
    assert verified.code == 0, verified.stderr
    assert "restore test passed" in verified.stdout  # the result, on stdout

    pg_names.append("wrt_cli_restored")
    restored = run_warroom(
        "restore", "database", "nightly", "--new-db", "wrt_cli_restored", env=env, cwd=tmp_path
    )
    assert restored.code == 0, restored.stderr
    assert pg_snapshot(pg_url("wrt_cli_restored")).tables == pg_snapshot(pg_db).tables


def test_default_name_is_a_sortable_timestamp(env: dict[str, str], tmp_path: Path) -> None:
    created = run_warroom("create", "database", "--json", env=env, cwd=tmp_path)
    assert created.code == 0, created.stderr
    name = created.json()["name"]
    assert name.startswith("db-") and name.endswith("Z") and len(name) == len("db-20261126T030000Z")


@pytest.mark.parametrize("bad", ["../x", "", "x" * 300, "two words", ".hidden", "a/b"])
def test_invalid_names_are_refused_before_any_file_is_touched(
    env: dict[str, str], tmp_path: Path, bad: str
) -> None:
    result = run_warroom("create", "database", "--name", bad, env=env, cwd=tmp_path)
    assert result.code == 2
    assert "invalid checkpoint name" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "backups").exists() and not (tmp_path / "catalog.db").exists()


def test_damaged_backup_exits_3_naming_the_part(env: dict[str, str], tmp_path: Path) -> None:
    assert run_warroom("create", "database", "--name", "b", env=env, cwd=tmp_path).code == 0
    part = tmp_path / "backups" / "database" / "b" / "schema"
    data = bytearray(part.read_bytes())
    data[-10] ^= 0xFF
    part.write_bytes(bytes(data))
    result = run_warroom("verify", "b", "--json", env=env, cwd=tmp_path)
    assert result.code == 3
    assert result.json()["error"]["details"]["part"] == "schema"
    assert "schema" in result.stderr
    refused = run_warroom(
        "restore", "database", "b", "--new-db", "wrt_never_made", env=env, cwd=tmp_path
    )
    assert refused.code == 3 and not pg_database_exists("wrt_never_made")


def test_restore_of_unknown_name(env: dict[str, str], tmp_path: Path) -> None:
    result = run_warroom("restore", "database", "nope", "--new-db", "wrt_x", env=env, cwd=tmp_path)
    assert result.code == 2
    assert "no database checkpoint named 'nope'" in result.stderr


def test_unreachable_database_fails_fast_naming_the_host(tmp_path: Path) -> None:
    env = cli_env(tmp_path, DATABASE_URL="postgresql://app:hunter2@127.0.0.1:1/prod")
    started = time.monotonic()
    result = run_warroom("create", "database", env=env, cwd=tmp_path)
    assert time.monotonic() - started < 15
    assert result.code == 1
    assert "127.0.0.1" in result.stderr and "hunter2" not in result.stderr


def test_wrong_password_is_reported_without_the_password(
    tmp_path: Path, password_cluster: object
) -> None:
    url = password_cluster.url(password="not-the-password")  # type: ignore[attr-defined]
    env = cli_env(tmp_path, DATABASE_URL=url)
    result = run_warroom("create", "database", env=env, cwd=tmp_path)
    assert result.code == 1
    assert "password authentication failed" in result.stderr
    assert "not-the-password" not in result.stderr + result.stdout


def test_password_never_stored_or_listed(tmp_path: Path, password_cluster: object) -> None:
    url = password_cluster.url()  # type: ignore[attr-defined]
    env = cli_env(tmp_path, DATABASE_URL=url)
    created = run_warroom("create", "database", "--name", "pw", env=env, cwd=tmp_path)
    assert created.code == 0, created.stderr
    listed = run_warroom("list", "--json", env=env, cwd=tmp_path)
    secret = password_cluster.password  # type: ignore[attr-defined]
    manifest = (tmp_path / "backups" / "database" / "pw" / "manifest.json").read_text()
    assert secret not in listed.stdout + created.stderr + manifest
    assert "postgres@127.0.0.1" in manifest


def test_missing_pg_dump_is_named_with_the_fix(env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "WARROOM_PG_BIN_DIR": str(tmp_path / "no-such-dir")}
    result = run_warroom("create", "database", env=env, cwd=tmp_path)
    assert result.code == 2
    assert "pg_dump was not found" in result.stderr and "WARROOM_PG_BIN_DIR" in result.stderr


def test_pg_dump_older_than_the_server_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    # A stand-in pg_dump that reports an old version: no PostgreSQL 9.6 client can be installed
    # here, and only the version check is under test (it refuses before running the tool).
    bin_dir = tmp_path / "oldbin"
    bin_dir.mkdir()
    fake = bin_dir / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n")
    fake.chmod(0o755)
    result = run_warroom(
        "create", "database", env={**env, "WARROOM_PG_BIN_DIR": str(bin_dir)}, cwd=tmp_path
    )
    assert result.code == 2
    assert "older than the server" in result.stderr and "9.6.24" in result.stderr


def _start_blocked_backup(
    env: dict[str, str], tmp_path: Path, pg_db: str, name: str, *extra: str
) -> tuple[psycopg.Connection, subprocess.Popen[str]]:
    """A backup that stalls in its last part, data-rest, once every table's rows are stored:
    pg_dump waits to read the sequence ``counter``, which another session is dropping."""
    blocker = psycopg.connect(pg_db)
    blocker.execute("DROP SEQUENCE counter")  # not committed: the lock is held until close
    proc = subprocess.Popen(
        warroom_command("create", "database", "--name", name, *extra),
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # No deadline of our own: a loaded machine may be slow; pytest's timeout ends a hang.
    with psycopg.connect(pg_db, autocommit=True) as watcher:
        while proc.poll() is None:
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            ).fetchone()
            if waiting and waiting[0] > 0:
                return blocker, proc
            time.sleep(0.1)
    raise AssertionError(f"the backup ended before it reached the lock: {proc.communicate()}")


def test_two_backups_of_one_database_never_interleave(
    env: dict[str, str], tmp_path: Path, pg_db: str
) -> None:
    blocker, first = _start_blocked_backup(env, tmp_path, pg_db, "first")
    try:
        second = run_warroom("create", "database", "--name", "second", env=env, cwd=tmp_path)
        assert second.code == 1
        assert "already running" in second.stderr
        assert not (tmp_path / "backups" / "database" / "second").exists()
    finally:
        blocker.close()
    out, err = first.communicate()
    assert first.returncode == 0, err
    assert run_warroom("verify", "first", env=env, cwd=tmp_path).code == 0


@pytest.mark.parametrize("how", ["sigkill", "ctrl-c", "pg_dump-killed"])
def test_interrupted_backup_leaves_nothing_valid(
    env: dict[str, str], tmp_path: Path, pg_db: str, how: str
) -> None:
    blocker, proc = _start_blocked_backup(env, tmp_path, pg_db, "cut", "--jobs", "2")
    try:
        backup_dir = tmp_path / "backups" / "database" / "cut"
        while not (backup_dir / "copy-00000").exists():  # the rows are stored; data-rest waits
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        if how == "sigkill":
            proc.send_signal(signal.SIGKILL)
        elif how == "ctrl-c":
            proc.send_signal(signal.SIGINT)
        else:
            with psycopg.connect(pg_db, autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
        proc.communicate()
    finally:
        blocker.close()
    assert proc.returncode != 0
    if how != "sigkill":
        assert not backup_dir.exists()  # cleaned up on the way out
    listed = run_warroom("list", "--json", env=env, cwd=tmp_path)
    assert listed.json()["checkpoints"] == []
    assert run_warroom("verify", "cut", env=env, cwd=tmp_path).code == 2
    assert (
        run_warroom("restore", "database", "cut", "--new-db", "wrt_cut", env=env, cwd=tmp_path).code
        == 2
    )
    # The next backup sweeps whatever a killed process left behind.
    assert run_warroom("create", "database", "--name", "next", env=env, cwd=tmp_path).code == 0
    assert not backup_dir.exists()
    assert sorted(os.listdir(tmp_path / "backups" / "database")) == ["next"]


def test_catalog_lost_then_rebuilt(
    env: dict[str, str], tmp_path: Path, pg_names: list[str]
) -> None:
    assert run_warroom("create", "database", "--name", "kept", env=env, cwd=tmp_path).code == 0
    (tmp_path / "catalog.db").unlink()
    assert run_warroom("list", "--json", env=env, cwd=tmp_path).json()["checkpoints"] == []
    pg_names.append("wrt_without_catalog")
    restored = run_warroom(
        "restore", "database", "kept", "--new-db", "wrt_without_catalog", env=env, cwd=tmp_path
    )
    assert restored.code == 0, restored.stderr  # the manifest alone is enough to restore
    rebuilt = run_warroom("catalog", "rebuild", "--json", env=env, cwd=tmp_path)
    assert rebuilt.code == 0 and rebuilt.json() == {"indexed": 1, "problems": []}
    assert [
        c["name"]
        for c in run_warroom("list", "--json", env=env, cwd=tmp_path).json()["checkpoints"]
    ] == ["kept"]


def test_seed_script_creates_a_database_checkpoint(env: dict[str, str], tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "create-checkpoint.sh"
    env = {**env, "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"}
    done = subprocess.run(
        [str(script), "database", "--name", "my-backup"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "backups" / "database" / "my-backup" / "manifest.json").is_file()
    assert "created database checkpoint my-backup" in done.stdout


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql://u:s3cret@[::1/db", "s3cret"),
        ("postgresql://u:s3cr%zzet@127.0.0.1/db", "s3cr"),
        ("host=127.0.0.1 password=s3cret dbname=x", "s3cret"),
        ("postgresql://u:s3cret@127.0.0.1:abc/db", "s3cret"),
        ("postgresql://u:s3cret@127.0.0.1/db?connect_timeout=abc", "s3cret"),
        ("mysql://u:s3cret@127.0.0.1/db", "s3cret"),
    ],
)
def test_malformed_urls_exit_2_without_the_password(tmp_path: Path, url: str, secret: str) -> None:
    result = run_warroom("create", "database", "--url", url, env=cli_env(tmp_path), cwd=tmp_path)
    assert result.code == 2, result.stderr
    assert secret not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_backups_started_in_the_same_second_get_distinct_names(tmp_path: Path) -> None:
    import sqlite3

    for name in ("a.db", "b.db"):
        sqlite3.connect(tmp_path / name).execute("CREATE TABLE t (x)").connection.close()
    env = cli_env(tmp_path)
    procs = [
        subprocess.Popen(
            warroom_command(
                "create", "database", "--url", f"sqlite:///{tmp_path}/{name}", "--json"
            ),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a.db", "b.db")
    ]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    listed = run_warroom("list", "--json", env=env, cwd=tmp_path).json()["checkpoints"]
    assert len({row["name"] for row in listed}) == 2


def test_sqlite_path_with_special_characters(tmp_path: Path) -> None:
    import sqlite3

    odd = tmp_path / "odd#dir" / "app%1?.db"
    odd.parent.mkdir()
    conn = sqlite3.connect(odd)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1), (2)")
    conn.commit()
    conn.close()
    env = cli_env(tmp_path)
    url = "sqlite:///" + str(odd).replace("%", "%25").replace("#", "%23").replace("?", "%3F")
    created = run_warroom("create", "database", "--url", url, "--json", env=env, cwd=tmp_path)
    assert created.code == 0, created.stderr
    assert created.json()["tables"] == {"t": 2}


def test_list_by_source_with_filters_and_rebuild_check(
    env: dict[str, str], tmp_path: Path, pg_db: str
) -> None:
    lite = tmp_path / "app.db"
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sqlite3; sqlite3.connect({str(lite)!r}).execute('CREATE TABLE t (x)')",
        ],
        check=True,
    )
    for args in (("--name", "pg-1"), ("--name", "lite-1", "--url", f"sqlite:///{lite}")):
        assert run_warroom("create", "database", *args, env=env, cwd=tmp_path).code == 0
    assert run_warroom("verify", "pg-1", env=env, cwd=tmp_path).code == 0

    listing = run_warroom("list", "--json", env=env, cwd=tmp_path).json()
    sources = {s["label"]: s for s in listing["sources"]}
    assert sources[pg_db]["configured"] and sources[pg_db]["backups"] == ["pg-1"]
    assert sources[f"sqlite:///{lite}"]["backups"] == ["lite-1"]
    assert {row["name"]: row["status"] for row in listing["checkpoints"]} == {
        "pg-1": "checked",
        "lite-1": "completed",
    }
    only = run_warroom("list", "--source", f"sqlite:///{lite}", "--json", env=env, cwd=tmp_path)
    assert [row["name"] for row in only.json()["checkpoints"]] == ["lite-1"]
    checked = run_warroom("list", "--status", "checked", "--json", env=env, cwd=tmp_path)
    assert [row["name"] for row in checked.json()["checkpoints"]] == ["pg-1"]
    human = run_warroom("list", env=env, cwd=tmp_path)
    assert f"database backups of {pg_db} (configured)" in human.stdout
    unknown = run_warroom("list", "--source", "nowhere", env=env, cwd=tmp_path)
    assert unknown.code == 2 and "no backups of a source 'nowhere'" in unknown.stderr
    bad = run_warroom("list", "--status", "verified", env=env, cwd=tmp_path)
    assert bad.code == 2 and "restore-tested" in bad.stderr

    part = tmp_path / "backups" / "database" / "lite-1" / "database"
    data = bytearray(part.read_bytes())
    data[-1] ^= 0xFF
    part.write_bytes(bytes(data))
    assert run_warroom("catalog", "rebuild", env=env, cwd=tmp_path).code == 0
    rebuilt = run_warroom("catalog", "rebuild", "--check", "--json", env=env, cwd=tmp_path)
    assert rebuilt.code == 3 and rebuilt.json()["indexed"] == 2
    assert "lite-1: backup 'lite-1' is damaged" in rebuilt.json()["problems"][0]
    statuses = {
        row["name"]: row["status"]
        for row in run_warroom("list", "--json", env=env, cwd=tmp_path).json()["checkpoints"]
    }
    assert statuses == {"pg-1": "checked", "lite-1": "damaged"}


def test_status_without_a_database_says_so(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    status = run_warroom("status", env=env, cwd=tmp_path)
    assert status.code == 1 and "no database configured: set DATABASE_URL" in status.stdout
    listed = run_warroom("schedule", "list", env=env, cwd=tmp_path)
    assert listed.code == 0 and listed.stdout.count("no database configured") == 3
