"""Throwaway PostgreSQL clusters (initdb on a free port in a temp dir) for tests that need a
server of their own: password authentication, WAL archiving. Never the machine's own server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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


def warroom_for_postgres(base: Path) -> str:
    """How the postgres OS user runs warroom. Neither this interpreter nor this checkout may be
    where it can go (root's home), so what a WAL command imports (warroom and zstandard) is
    copied beside the repository and run by Debian's python3 of the same version."""
    import zstandard

    lib = base / "pylib"
    shutil.copytree(ROOT / "src" / "warroom", lib / "warroom")
    shutil.copytree(Path(zstandard.__file__).parent, lib / "zstandard")
    for path in [lib, *lib.rglob("*")]:
        shutil.chown(path, "postgres", "postgres")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    python = shutil.which(version, path="/usr/bin") or "/usr/bin/python3"
    return f"PYTHONPATH={lib} {python} -m warroom"
