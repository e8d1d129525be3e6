"""Throwaway PostgreSQL clusters (initdb on a free port in a temp dir) for tests that need a
server of their own: password authentication, WAL archiving. Never the machine's own server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from warroom.database.pitr import PointInTimeRecovery, RecoveryReport, RecoveryTarget

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    data_dir: Path
    port: int
    password: str

    def url(self, dbname: str = "postgres", password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://postgres:{secret}@127.0.0.1:{self.port}/{dbname}"

    def pg_ctl(self, *args: str) -> list[str]:
        """The command line of ``pg_ctl ARGS`` on this cluster (as postgres when we are root)."""
        return _run_as_postgres_if_root([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), *args])

    def start(self) -> None:
        base = self.data_dir.parent
        options = f"-p {self.port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            self.pg_ctl("-o", options, "-w", "-l", str(base / "log"), "start"),
            check=True,
            capture_output=True,
        )

    def crash(self) -> list[str]:
        """The command line that stops the server as a crash would (``-m immediate``)."""
        return self.pg_ctl("-m", "immediate", "stop")


def _run_as_postgres_if_root(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root: drop to the postgres user when we are root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextmanager
def throwaway_cluster(
    password: str = "s3cret-pw", auth: str = "scram-sha-256", conf: dict[str, str] | None = None
) -> Iterator[Cluster]:
    base = Path(tempfile.mkdtemp(prefix="warroom-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    data_dir, port = base / "data", free_port()
    pwfile = base / "pw"
    pwfile.write_text(password)
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres", "postgres")
    subprocess.run(
        _run_as_postgres_if_root(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "--pwfile",
                str(pwfile),
                f"--auth={auth}",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        ),
        check=True,
        capture_output=True,
    )
    if conf:
        with open(data_dir / "postgresql.conf", "a") as handle:
            handle.writelines(f"{key} = '{value}'\n" for key, value in conf.items())
    cluster = Cluster(data_dir, port, password)
    cluster.start()
    try:
        yield cluster
    finally:
        subprocess.run(cluster.crash(), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


# What a WAL command imports besides warroom and zstandard to reach S3 and to encrypt.
S3_AND_CRYPTO = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "dateutil",
    "urllib3",
    "six",
    "certifi",
    "cryptography",
    "_cffi_backend",
)


def warroom_for_postgres(base: Path, modules: tuple[str, ...] = ()) -> str:
    """How the postgres OS user runs warroom. Neither this interpreter nor this checkout may be
    where it can go (root's home), so what a WAL command imports (warroom, zstandard and the
    ``modules`` named, e.g. :data:`S3_AND_CRYPTO`) is copied beside the repository and run by
    Debian's python3 of the same version."""
    import importlib

    lib = base / "pylib"
    shutil.copytree(ROOT / "src" / "warroom", lib / "warroom")
    for name in ("zstandard", *modules):
        source = Path(str(importlib.import_module(name).__file__))
        if source.name == "__init__.py":
            shutil.copytree(source.parent, lib / name)
        else:
            shutil.copy(source, lib / source.name)
    for path in [lib, *lib.rglob("*")]:
        shutil.chown(path, "postgres", "postgres")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    python = shutil.which(version, path="/usr/bin") or "/usr/bin/python3"
    return f"PYTHONPATH={lib} {python} -m warroom"


def wait_for(condition: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    """Poll ``condition`` until it holds (the archiver reports to no one: it is polled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def archiver_state(cluster: Cluster) -> tuple[int, str | None, int]:
    """pg_stat_archiver's (archived_count, last_archived_wal, failed_count)."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT archived_count, last_archived_wal, failed_count FROM pg_stat_archiver"
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def switch_wal(cluster: Cluster) -> str:
    """Close the current WAL segment (the archiver takes it); return the new one's name."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("SELECT pg_switch_wal()")
        row = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()
    assert row is not None
    return str(row[0])


def stop_server(data_dir: Path) -> None:
    """Stop a server started in ``data_dir`` (a recovered one: it runs as postgres)."""
    subprocess.run(
        _run_as_postgres_if_root(
            [str(PG_BIN / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "stop"]
        ),
        capture_output=True,
    )


@contextmanager
def recovered_server(
    pitr: PointInTimeRecovery, target: RecoveryTarget, data_dir: Path
) -> Iterator[tuple[RecoveryReport, str]]:
    """Recover ``target`` into ``data_dir`` and start the server on a free port; yield the
    report and the server's URL; stop the server afterwards."""
    port = free_port()
    report = pitr.restore(target, data_dir, port=port, start=True, timeout=120)
    try:
        yield report, f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        stop_server(data_dir)
