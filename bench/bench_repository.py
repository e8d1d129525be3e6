"""Repository benchmark: backup and restore to S3 (moto's server on loopback), with and without
encryption, against a local repository; ``warroom wal push`` to S3 against local.

Each step runs the CLI as a subprocess (``warroom create database``, ``warroom restore
database --new-db``, ``warroom wal push``) and reports the median wall time of ``--rounds``
runs and the peak resident memory of the process (``wait4``). The database is made here with
``generate_series`` (``--rows``, about 100 bytes a row), not the 1.26 GB reference database,
so a run fits a busy shared machine; the load average is printed with the figures. Not a test:
run by hand, figures into bench/RESULTS.md.

    .venv/bin/python bench/bench_repository.py [--rows 2000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.s3server import moto_server  # noqa: E402  (the same S3 server the tests use)

SERVER = os.environ.get("WARROOM_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def run(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of ``warroom args``; fails loudly on a non-zero exit."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "warroom", *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    assert process.stderr is not None
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"warroom {' '.join(args)} failed: {process.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss // 1024


def make_database(name: str, rows: int) -> str:
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = SERVER.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE t AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v, "
            f"now() AS at FROM generate_series(1, {rows}) g"
        )
    return url


def drop(names: list[str]) -> None:
    with psycopg.connect(SERVER, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--segments", type=int, default=10)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="warroom-bench-repo-"))
    source = make_database("bench_repo_src", options.rows)
    created: list[str] = []
    results: dict[str, dict[str, float]] = {}
    with moto_server() as s3:
        key_file = work / "key"
        generate = [sys.executable, "-m", "warroom", "key", "generate"]
        key_file.write_text(subprocess.check_output(generate, text=True))
        targets = {
            "local": {"BACKUP_DIR": str(work / "local")},
            "s3": {**s3.environment(), "BACKUP_DIR": f"s3://{s3.new_bucket()}/r"},
            "s3-encrypted": {
                **s3.environment(),
                "BACKUP_DIR": f"s3://{s3.new_bucket()}/r",
                "WARROOM_ENCRYPTION_KEY_FILE": str(key_file),
            },
        }
        for label, env in targets.items():
            env = {**env, "WARROOM_CATALOG_URL": f"sqlite:///{work}/{label}.db"}
            backups, restores, memory = [], [], []
            for number in range(options.rounds):
                seconds, rss = run(
                    ["create", "database", "--url", source, "--name", f"b{number}"], env
                )
                backups.append(seconds)
                memory.append(rss)
                target = f"bench_repo_{label.replace('-', '_')}_{number}"
                created.append(target)
                seconds, rss = run(
                    ["restore", "database", f"b{number}", "--new-db", target, "--url", source],
                    env,
                )
                restores.append(seconds)
                memory.append(rss)
            results[label] = {
                "backup_s": statistics.median(backups),
                "restore_s": statistics.median(restores),
                "peak_rss_mb": max(memory),
            }
        segment = work / "seg"
        segment.mkdir()
        for label in ("local", "s3", "s3-encrypted"):
            env = targets[label]
            times = []
            for number in range(options.segments):
                path = segment / label / f"000000010000000000000{number:03X}"
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(os.urandom(1 << 20) + bytes(15 << 20))
                times.append(run(["wal", "push", str(path)], env)[0])
            results[label]["wal_push_ms"] = round(statistics.median(times) * 1000, 1)
    drop(["bench_repo_src", *created])
    local = results["local"]
    report = {
        "rows": options.rows,
        "load_average": os.getloadavg(),
        "results": results,
        "ratios_to_local": {
            label: {
                metric: round(values[metric] / local[metric], 2)
                for metric in ("backup_s", "restore_s", "wal_push_ms")
            }
            for label, values in results.items()
            if label != "local"
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
