"""Repository benchmark: backup and restore to S3 (moto's server on loopback), with and without
encryption, against a local repository; ``warroom wal push`` to S3 against local.

Each step runs the CLI as a subprocess (``warroom create database``, ``warroom restore
database --new-db``, ``warroom wal push``) and reports the median wall time of ``--rounds``
runs, its ratio to the local repository, the peak resident memory of our process (``wait4``)
and, apart, of the moto server (it is the test's S3, its memory is not ours), the load average
before and after, and a verdict per target of issue 16 (S3 at most 1.2x local for backup and
restore, ``wal push`` to S3 at most 1.5x local, peak memory under 200 MB).

The database is either an existing one (``--db warroom_bench``, the reference database: it is
only read; each restore goes to a new database, dropped at once) or a table made here with
``generate_series`` (``--rows``, about 100 bytes a row) for quick iterations. Not a test: run by
hand, figures into bench/RESULTS.md.

With ``--wal-only`` only the ``wal push`` series runs (no database is needed); ``--wal-from
DIR`` pushes copies of the WAL segments in DIR (e.g. real ones, from a cluster's pg_wal) in
turn instead of the generated ones (1 MiB random, 15 MiB zeros).

    .venv/bin/python bench/bench_repository.py --rows 1000000 --rounds 2
    .venv/bin/python bench/bench_repository.py --db warroom_bench --rounds 2
    .venv/bin/python bench/bench_repository.py --wal-only --segments 30 --wal-from DIR
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
GENERATED = "bench_repo_src"
TARGETS = {"backup_s": 1.2, "restore_s": 1.2, "wal_push_ms": 1.5}  # at most, x local
MEMORY_LIMIT_MB = 200


def clean_environment() -> dict[str, str]:
    """Ours without any warroom setting, so only what a step names is configured, and with
    bytecode written (into the work directory, see ``main``) as an installed package has it:
    with PYTHONDONTWRITEBYTECODE (set on this machine) every process compiled every module of
    ours again: 11 ms of a local ``wal push``, 32 ms of one to S3, whose path is longer."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WARROOM_", "AWS_"))
        and key not in ("DATABASE_URL", "BACKUP_DIR", "PYTHONDONTWRITEBYTECODE")
    }


def run(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of ``warroom args``; fails loudly on a non-zero exit."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "warroom", *args],
        env={**clean_environment(), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    errors = process.stderr.read()  # before waiting: a full pipe would block the child
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"warroom {' '.join(args)} failed: {errors.decode()}")
    return elapsed, usage.ru_maxrss // 1024


def peak_rss_mb(pid: int) -> int:
    """The peak resident memory (MB) of a running process, from /proc (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def database_url(name: str) -> str:
    return SERVER.rsplit("/", 1)[0] + "/" + name


def make_database(rows: int) -> str:
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{GENERATED}"')
        conn.execute(f'CREATE DATABASE "{GENERATED}"')
    with psycopg.connect(database_url(GENERATED), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE t AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v, "
            f"now() AS at FROM generate_series(1, {rows}) g"
        )
    return database_url(GENERATED)


def drop(name: str) -> None:
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_size_mb(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0]) >> 20


def measure(label: str, env: dict[str, str], source: str, rounds: int) -> dict[str, float]:
    """Median backup and restore seconds of ``rounds`` rounds, and the peak RSS of both."""
    backups, restores, memory = [], [], []
    for number in range(rounds):
        seconds, rss = run(["create", "database", "--url", source, "--name", f"b{number}"], env)
        backups.append(seconds)
        memory.append(rss)
        target = f"bench_repo_{label.replace('-', '_')}_{number}"
        try:
            restore = ["restore", "database", f"b{number}", "--new-db", target, "--url", source]
            seconds, rss = run(restore, env)
        finally:
            drop(target)  # at once: a copy of the reference database is 1.3 GB
        restores.append(seconds)
        memory.append(rss)
        print(
            f"{label} round {number}: backup {backups[-1]:.2f} s, restore {seconds:.2f} s",
            file=sys.stderr,
        )
    return {
        "backup_s": round(statistics.median(backups), 2),
        "restore_s": round(statistics.median(restores), 2),
        "peak_rss_mb": max(memory),
    }


def wal_push_ms(
    targets: dict[str, dict[str, str]], work: Path, segments: int, source: Path | None
) -> dict[str, float]:
    """The median milliseconds of ``warroom wal push`` of ``segments`` 16 MiB segments to each
    target (copies of those in ``source``, in turn, or generated ones); the targets take turns,
    segment by segment, so a change of the machine's load (other users share it) falls on all
    of them alike."""
    times: dict[str, list[float]] = {label: [] for label in targets}
    found = sorted(path for path in source.iterdir() if path.is_file()) if source else []
    for number in range(segments):
        for label, env in targets.items():
            path = work / "segments" / label / f"000000010000000000000{number:03X}"
            path.parent.mkdir(parents=True, exist_ok=True)
            if found:
                shutil.copyfile(found[number % len(found)], path)
            else:
                path.write_bytes(os.urandom(1 << 20) + bytes(15 << 20))
            times[label].append(run(["wal", "push", str(path)], env)[0])
    return {label: round(statistics.median(found) * 1000, 1) for label, found in times.items()}


def verdicts(results: dict[str, dict[str, float]]) -> dict[str, str]:
    local = results["local"]
    found = {}
    for label, values in results.items():
        if label == "local":
            continue
        for metric, limit in TARGETS.items():
            if metric not in values:  # --wal-only
                continue
            ratio = values[metric] / local[metric]
            verdict = "met" if ratio <= limit else "missed"
            found[f"{label} {metric}"] = f"{verdict}: {ratio:.2f}x (target {limit}x)"
    for label, values in results.items():
        if "peak_rss_mb" not in values:
            continue
        verdict = "met" if values["peak_rss_mb"] < MEMORY_LIMIT_MB else "missed"
        found[f"{label} peak_rss_mb"] = (
            f"{verdict}: {values['peak_rss_mb']} MB (target < {MEMORY_LIMIT_MB})"
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="back up this existing database (only read)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="else: a generated table")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--wal-only", action="store_true", help="only the wal push series")
    parser.add_argument("--wal-from", type=Path, help="push copies of the segments in DIR")
    options = parser.parse_args()
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="warroom-bench-repo-"))
    source = ""
    if not options.wal_only:
        source = database_url(options.db) if options.db else make_database(options.rows)
    results: dict[str, dict[str, float]] = {label: {} for label in ("local", "s3", "s3-encrypted")}
    try:
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
            for env in targets.values():
                env["PYTHONPYCACHEPREFIX"] = str(work / "bytecode")
            for label, env in targets.items():
                env = {**env, "WARROOM_CATALOG_URL": f"sqlite:///{work}/{label}.db"}
                if not options.wal_only:
                    results[label] = measure(label, env, source, options.rounds)
            pushes = wal_push_ms(targets, work, options.segments, options.wal_from)
            for label, median in pushes.items():
                results[label]["wal_push_ms"] = median
            moto_rss = peak_rss_mb(s3.pid)
    finally:
        shutil.rmtree(work)  # the local repository holds a copy of the database
        if not options.db and not options.wal_only:
            drop(GENERATED)
    local = results["local"]
    report = {
        "database": None if options.wal_only else options.db or f"generated, {options.rows} rows",
        "database_mb": database_size_mb(source) if options.db and source else None,
        "wal_segments": str(options.wal_from or "generated: 1 MiB random, 15 MiB zeros"),
        "rounds": options.rounds,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "results": results,
        "moto_server_peak_rss_mb": moto_rss,
        "ratios_to_local": {
            label: {
                metric: round(values[metric] / local[metric], 2)
                for metric in TARGETS
                if metric in values
            }
            for label, values in results.items()
            if label != "local"
        },
        "verdicts": verdicts(results),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
