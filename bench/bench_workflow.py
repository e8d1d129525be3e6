"""Per-step overhead of a durable workflow: warroom against DBOS Transact and a plain INSERT.

What it measures (issue 3), in one run, on one local PostgreSQL server:

- ``floor``: one plain autocommit ``INSERT`` of a small row per step (psycopg 3, one
  connection, a prepared statement), 10 inserts per "execution", 500 executions: the cost of one
  durable write round trip, which no durable step can beat.
- ``warroom-postgresql``: our ``AutomationEngine`` running a workflow of 10 steps, each returning
  a small dict, 500 executions one after another through ``engine.execute_workflow`` (each step
  result checkpointed, plus the fixed per-execution writes: create, claim lease, finish).
- ``warroom-sqlite``: the same workflow with the catalog in a SQLite file (in ``bench/out/``),
  with the default ``synchronous=FULL``; ``warroom-sqlite-normal``: the opt-in
  ``?synchronous=normal``.
- ``serializer``: the cost of storing and reading back one step's result (``{"i": i}``) with
  the default typed MessagePack encoding and with the JSON one, without the catalog
  (``serializer_us_per_step``).
- ``dbos-postgresql``: DBOS Transact (``dbos`` from PyPI) running the identical workflow
  (``@DBOS.workflow()`` calling 10 ``@DBOS.step()`` functions that return small dicts), its
  system database on the same server. DBOS lives in its own virtualenv, so this script runs
  itself there as a subprocess (``--dbos-only``), which prints its timing as JSON.

Every subject gets a fresh, uniquely named database (dropped at the end), runs ``--warmup``
executions untimed, then ``--executions`` timed ones. The figure is wall time / (executions *
steps) in ms per step, so the fixed per-execution writes are spread over the steps, as the
issue asks. Process CPU time per step is reported too (what the client's Python costs, as
against waiting for the server). Targets: warroom on PostgreSQL at most 1.0 ms per step and at
most 0.25x DBOS; on SQLite at most 0.3 ms per step.

Run it from the project root, with nothing else heavy running::

    python3 -m venv bench/out/venv-dbos && bench/out/venv-dbos/bin/pip install dbos  # once
    .venv/bin/python bench/bench_workflow.py
    .venv/bin/python bench/bench_workflow.py --executions 200 --skip-dbos
    .venv/bin/python bench/bench_workflow.py --profile   # + cProfile of warroom on PostgreSQL

It prints a table and writes the figures to ``bench/out/workflow-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchcommon import launch_dbos

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_DBOS_PYTHON = OUT / "venv-dbos" / "bin" / "python"
TARGET_PG_MS = 1.0
TARGET_DBOS_RATIO = 0.25
TARGET_SQLITE_MS = 0.3


# -- timing -----------------------------------------------------------------------------------


def timed(run_one: Callable[[int], Any], warmup: int, executions: int, steps: int) -> dict:
    """Run ``warmup`` untimed executions, then ``executions`` timed ones; return the figures."""
    for i in range(warmup):
        run_one(i)
    durations = []
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for i in range(warmup, warmup + executions):
        started = time.perf_counter()
        run_one(i)
        durations.append(time.perf_counter() - started)
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    durations.sort()
    total_steps = executions * steps
    return {
        "executions": executions,
        "steps_per_execution": steps,
        "wall_seconds": round(wall, 4),
        "ms_per_step": round(wall * 1000 / total_steps, 4),
        "cpu_ms_per_step": round(cpu * 1000 / total_steps, 4),
        "ms_per_execution_p50": round(statistics.median(durations) * 1000, 3),
        "ms_per_execution_p95": round(durations[int(len(durations) * 0.95) - 1] * 1000, 3),
    }


# -- subjects ---------------------------------------------------------------------------------


def bench_floor(url: str, warmup: int, executions: int, steps: int) -> dict:
    """One autocommit INSERT of a small row per step, on one connection."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE floor_steps (execution_id text NOT NULL, number integer NOT NULL, "
            "result bytea, PRIMARY KEY (execution_id, number))"
        )
        sql = "INSERT INTO floor_steps (execution_id, number, result) VALUES (%s, %s, %s)"

        def run_one(i: int) -> None:
            execution_id = uuid.uuid4().hex
            for number in range(steps):
                payload = json.dumps({"i": number}).encode()
                conn.execute(sql, (execution_id, number, payload), prepare=True)

        return timed(run_one, warmup, executions, steps)


def bench_warroom(catalog_url: str, warmup: int, executions: int, steps: int) -> dict:
    from warroom import AutomationEngine
    from warroom.config import Settings

    workdir = Path(tempfile.mkdtemp(prefix="wf-checkpoints-", dir=OUT))
    engine = AutomationEngine(
        settings=Settings(catalog_url=catalog_url, checkpoint_dir=workdir / "checkpoints")
    )
    try:
        run_one = _warroom_workflow(engine, steps)
        figures = timed(run_one, warmup, executions, steps)
        last = engine.list_executions(limit=1)[0]
        check = engine.get_execution(last.id)
        if check.status != "succeeded" or len(check.steps) != steps:
            raise SystemExit(f"warroom run went wrong: {check.to_dict()}")
        return figures
    finally:
        engine.close()
        shutil.rmtree(workdir, ignore_errors=True)


def bench_serializer(rounds: int = 100_000) -> dict:
    """Microseconds to store and read back one step's result, per serializer."""
    from warroom.repository import Repository
    from warroom.storage.local import LocalStorage
    from warroom.workflow.values import ValueCodec

    out: dict[str, Any] = {}
    for name in ("msgpack", "json"):
        codec = ValueCodec(Repository(LocalStorage(OUT)), name)
        started = time.perf_counter()
        for i in range(rounds):
            codec.load(codec.dump({"i": i}))
        out[f"{name}_us_per_step"] = round((time.perf_counter() - started) / rounds * 1e6, 2)
    return out


def _warroom_workflow(engine: Any, steps: int) -> Callable[[int], Any]:
    @engine.step()
    def step(i: int) -> dict:
        return {"i": i}

    @engine.workflow("ten")
    def ten() -> int:
        for i in range(steps):
            step(i)
        return 1

    return lambda _i: engine.execute_workflow("ten")


def bench_dbos(url: str, warmup: int, executions: int, steps: int) -> dict:
    """Runs inside the DBOS virtualenv (``--dbos-only``)."""
    from dbos import DBOS

    ten = launch_dbos("warroom-bench", url, steps)
    try:
        figures = timed(lambda _i: ten(), warmup, executions, steps)
        listed = DBOS.list_workflows(limit=1, sort_desc=True)
        recorded = DBOS.list_workflow_steps(listed[0].workflow_id)
        if listed[0].status != "SUCCESS" or len(recorded) != steps:
            raise SystemExit(f"DBOS run went wrong: {listed[0]}, {len(recorded)} steps")
        import dbos as dbos_module

        figures["dbos_version"] = getattr(dbos_module, "__version__", None) or _dist_version()
        return figures
    finally:
        DBOS.destroy()


def _dist_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dbos")
    except PackageNotFoundError:
        return None


def run_dbos_subprocess(python: Path, url: str, args: argparse.Namespace) -> dict:
    command = [
        str(python),
        str(Path(__file__).resolve()),
        "--dbos-only",
        url,
        "--warmup",
        str(args.warmup),
        "--executions",
        str(args.executions),
        "--steps",
        str(args.steps),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the DBOS run failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- databases --------------------------------------------------------------------------------


@contextmanager
def scratch_database(server: str, name: str) -> Iterator[str]:
    """A fresh database ``name`` on ``server``; dropped afterwards."""
    import psycopg

    admin = f"{server.rstrip('/')}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server.rstrip('/')}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_settings(server: str) -> dict:
    import psycopg

    with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as conn:
        names = ("server_version", "synchronous_commit", "fsync", "shared_buffers")
        return {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in names}


def profile_warroom(catalog_url: str, warmup: int, executions: int, steps: int) -> str:
    """cProfile of warroom on PostgreSQL: the top calls by cumulative and by own time."""
    import cProfile
    import io
    import pstats

    from warroom import AutomationEngine
    from warroom.config import Settings

    workdir = Path(tempfile.mkdtemp(prefix="wf-profile-", dir=OUT))
    engine = AutomationEngine(
        settings=Settings(catalog_url=catalog_url, checkpoint_dir=workdir / "checkpoints")
    )
    try:
        run_one = _warroom_workflow(engine, steps)
        for i in range(warmup):
            run_one(i)
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(executions):
            run_one(i)
        profiler.disable()
    finally:
        engine.close()
        shutil.rmtree(workdir, ignore_errors=True)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    text.write(f"cProfile of {executions} executions x {steps} steps (warroom, PostgreSQL)\n")
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(25)
    return text.getvalue()


# -- report -----------------------------------------------------------------------------------


def verdicts(results: dict) -> dict:
    out: dict[str, Any] = {}
    ours_pg = results.get("warroom-postgresql")
    ours_sqlite = results.get("warroom-sqlite")
    dbos = results.get("dbos-postgresql")
    floor = results.get("floor")
    if ours_pg:
        ms = ours_pg["ms_per_step"]
        out["postgresql_ms_per_step"] = {
            "value": ms,
            "target": TARGET_PG_MS,
            "met": ms <= TARGET_PG_MS,
        }
        if dbos:
            ratio = ms / dbos["ms_per_step"]
            out["postgresql_vs_dbos"] = {
                "value": round(ratio, 3),
                "target": TARGET_DBOS_RATIO,
                "met": ratio <= TARGET_DBOS_RATIO,
            }
        if floor:
            out["postgresql_vs_floor"] = {"value": round(ms / floor["ms_per_step"], 2)}
    if ours_sqlite:
        ms = ours_sqlite["ms_per_step"]
        out["sqlite_ms_per_step"] = {
            "value": ms,
            "target": TARGET_SQLITE_MS,
            "met": ms <= TARGET_SQLITE_MS,
        }
    return out


def print_report(report: dict) -> None:
    results = report["results"]
    floor = results.get("floor", {}).get("ms_per_step")
    dbos = results.get("dbos-postgresql", {}).get("ms_per_step")
    version = report["server_settings"].get("server_version")
    load = report["machine"]["loadavg_1min_before_after"]
    print(
        f"\n{report['executions']} executions x {report['steps']} steps "
        f"(+{report['warmup']} warm-up), PostgreSQL {version}, load average before/after {load}"
    )
    header = (
        f"{'subject':<20} {'ms/step':>8} {'cpu ms/step':>11} {'ms/exec p50':>11} "
        f"{'p95':>8} {'x floor':>8} {'x DBOS':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, figures in results.items():
        ms = figures["ms_per_step"]
        x_floor = f"{ms / floor:.2f}" if floor else "-"
        x_dbos = f"{ms / dbos:.3f}" if dbos else "-"
        print(
            f"{name:<20} {ms:>8.3f} {figures['cpu_ms_per_step']:>11.3f} "
            f"{figures['ms_per_execution_p50']:>11.2f} {figures['ms_per_execution_p95']:>8.2f} "
            f"{x_floor:>8} {x_dbos:>7}"
        )
    print(f"\nstore + read one step result, us: {report['serializer_us_per_step']}")
    for name, verdict in report["verdicts"].items():
        if "met" not in verdict:
            print(f"{name:<24} {verdict['value']}")
            continue
        mark = "MET" if verdict["met"] else "MISSED"
        print(f"{name:<24} {verdict['value']:<8} target <= {verdict['target']:<6} {mark}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--executions", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--dbos-python", type=Path, default=DEFAULT_DBOS_PYTHON)
    parser.add_argument("--skip-dbos", action="store_true", help="leave DBOS out")
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile warroom on PostgreSQL"
    )
    parser.add_argument("--dbos-only", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.dbos_only:  # inside the DBOS virtualenv: time DBOS, print JSON, nothing else
        figures = bench_dbos(args.dbos_only, args.warmup, args.executions, args.steps)
        print(json.dumps(figures))
        return 0

    if not args.skip_dbos and not args.dbos_python.exists():
        raise SystemExit(
            f"{args.dbos_python} not found: python3 -m venv bench/out/venv-dbos && "
            "bench/out/venv-dbos/bin/pip install dbos (or pass --skip-dbos)"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    prefix = f"wrwf_{stamp.lower()}_{os.getpid()}"
    sizes = (args.warmup, args.executions, args.steps)
    results: dict[str, dict] = {}
    load_before = os.getloadavg()

    print("floor: plain autocommit INSERT per step ...", flush=True)
    with scratch_database(args.server, f"{prefix}_floor") as url:
        results["floor"] = bench_floor(url, *sizes)

    print("warroom on PostgreSQL ...", flush=True)
    with scratch_database(args.server, f"{prefix}_ours") as url:
        results["warroom-postgresql"] = bench_warroom(url, *sizes)

    print("warroom on SQLite ...", flush=True)
    sqlite_dir = Path(tempfile.mkdtemp(prefix="wf-sqlite-", dir=OUT))
    try:
        results["warroom-sqlite"] = bench_warroom(f"sqlite:///{sqlite_dir}/catalog.db", *sizes)
        print("warroom on SQLite, synchronous=normal ...", flush=True)
        normal = f"sqlite:///{sqlite_dir}/normal.db?synchronous=normal"
        results["warroom-sqlite-normal"] = bench_warroom(normal, *sizes)
    finally:
        shutil.rmtree(sqlite_dir, ignore_errors=True)
    serializer = bench_serializer()

    if not args.skip_dbos:
        print("DBOS Transact on PostgreSQL (subprocess) ...", flush=True)
        with scratch_database(args.server, f"{prefix}_dbos") as url:
            results["dbos-postgresql"] = run_dbos_subprocess(args.dbos_python, url, args)

    report = {
        "benchmark": "workflow per-step overhead",
        "serializer_us_per_step": serializer,
        "when": stamp,
        "executions": args.executions,
        "warmup": args.warmup,
        "steps": args.steps,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        },
        "server_settings": server_settings(args.server),
        "results": results,
        "verdicts": verdicts(results),
    }
    print_report(report)

    if args.profile:
        with scratch_database(args.server, f"{prefix}_profile") as url:
            text = profile_warroom(url, *sizes)
        profile_path = OUT / f"workflow-{stamp}-profile.txt"
        profile_path.write_text(text)
        report["profile"] = str(profile_path.relative_to(ROOT))
        print(f"\ncProfile written to {profile_path.relative_to(ROOT)}")

    path = OUT / f"workflow-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"figures written to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
