"""Throughput of queued workflows: warroom workers against DBOS queues, on one PostgreSQL.

What it measures (issue 17), in one run, on the local PostgreSQL server:

- ``warroom-<N>w`` (N = 1, 2, 4 by default): N ``warroom worker`` processes (``--concurrency
  C`` each) on a fresh catalog database work the queue ``bench`` (no limits) of
  ``bench/queue_bench_app.py``. Once they are up, this process enqueues ``--executions``
  executions of a workflow of ``--steps`` steps (each returns a small dict) and waits until all
  have succeeded. Time: from the first enqueue to the last ``finished_at``. Each worker notes
  every step it ran and writes them out at exit: ``double_runs`` counts (execution, step) pairs
  that ran more than once, ``missing`` those that never ran.
- ``dbos`` and ``dbos-wc<C>``: DBOS Transact (``dbos`` from PyPI, in its own virtualenv, one
  process: this script runs itself there with ``--dbos-only``) enqueueing the identical
  workflow on a ``Queue`` without limits and with ``worker_concurrency=C``, waiting for every
  handle; its system database on the same server.
  ``worker_cpu_seconds`` is the CPU the worker processes used in their whole lives.
- ``write-limit``: the catalog's write limit on this machine: K threads (1, 2, 4, 8), each with
  its own connection, inserting small rows in autocommit for ``--write-seconds`` seconds;
  rows per second. A step costs one such write, an execution about three more (enqueue,
  claim, finish).

Figures are steps per second (executions x steps / time) and ratios to DBOS. The machine's load
average is recorded before each subject (the machine may be shared: read the figures with it).

    python3 -m venv bench/out/venv-dbos && bench/out/venv-dbos/bin/pip install dbos  # once
    .venv/bin/python bench/bench_queue.py
    .venv/bin/python bench/bench_queue.py --workers 1 2 --executions 200 --skip-dbos

It prints a table and writes the figures to ``bench/out/queue-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_workflow import DEFAULT_DBOS_PYTHON, DEFAULT_SERVER, OUT, ROOT, scratch_database
from benchcommon import launch_dbos

BENCH = Path(__file__).resolve().parent


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- warroom ----------------------------------------------------------------------------------


def bench_warroom(server: str, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    import psycopg

    from warroom.catalog import open_catalog

    name = f"warroom_bench_queue_{uuid.uuid4().hex[:8]}"
    with scratch_database(server, name) as url, tempfile.TemporaryDirectory() as work:
        trace = Path(work) / "trace"
        trace.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
        env.update(
            WARROOM_CATALOG_URL=url,
            CHECKPOINT_DIR=str(Path(work) / "cp"),
            BENCH_STEPS=str(args.steps),
            BENCH_TRACE=str(trace),
            PYTHONPATH=os.pathsep.join([str(BENCH), str(ROOT / "src")]),
        )
        open_catalog(url).close()  # migrated before the workers look at it
        command = [sys.executable, "-m", "warroom", "worker", "--app", "queue_bench_app:engine"]
        command += ["--concurrency", str(args.concurrency)]
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        procs = [
            subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(workers)
        ]
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                _until(
                    lambda: _count(conn, "warroom_workflow_workers", "state = 'running'") >= workers
                )
                os.environ.update(WARROOM_CATALOG_URL=url, CHECKPOINT_DIR=env["CHECKPOINT_DIR"])
                sys.path.insert(0, str(BENCH))
                import queue_bench_app

                before = load()
                started = time.perf_counter()
                for n in range(args.executions):
                    queue_bench_app.queue.enqueue("ten", f"e{n}", execution_id=f"e{n}")
                _until(
                    lambda: (
                        _count(conn, "warroom_workflow_executions", "status = 'succeeded'")
                        >= args.executions
                    )
                )
                waited = time.perf_counter() - started
                span = conn.execute(
                    "SELECT extract(epoch FROM max(finished_at) - min(created_at)), "
                    "sum(runs) FROM warroom_workflow_executions"
                ).fetchone()
                queue_bench_app.engine.close()
                sys.modules.pop("queue_bench_app", None)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=120)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
        ran = Counter(line for file in trace.iterdir() for line in file.read_text().splitlines())
    seconds = float(span[0])
    expected = {f"e{n} {i}" for n in range(args.executions) for i in range(args.steps)}
    return {
        "workers": workers,
        "concurrency_per_worker": args.concurrency,
        "executions": args.executions,
        "seconds": round(seconds, 3),
        "seconds_waited": round(waited, 3),
        "steps_per_second": round(args.executions * args.steps / seconds, 1),
        "double_runs": sum(1 for count in ran.values() if count > 1),
        "missing": len(expected - set(ran)),
        "claims": int(span[1]),
        # the workers' whole lives: start-up (imports, about 0.5 s each) and idle polls too
        "worker_cpu_seconds": round(cpu, 2),
        "load_before": before,
        "load_after": load(),
    }


def _count(conn: Any, table: str, where: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])


def _until(condition: Any, seconds: float = 600) -> None:
    deadline, pause = time.monotonic() + seconds, threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("the benchmark stalled")
        pause.wait(0.02)


# -- DBOS -------------------------------------------------------------------------------------


def bench_dbos(url: str, executions: int, steps: int, worker_concurrency: int | None) -> dict:
    """Runs inside the DBOS virtualenv (``--dbos-only``)."""
    from dbos import DBOS

    ten = launch_dbos("warroom-bench-queue", url, steps)
    queue = DBOS.register_queue("bench", worker_concurrency=worker_concurrency)  # defaults else
    try:
        before = load()
        started = time.perf_counter()
        handles = [queue.enqueue(ten) for _ in range(executions)]
        assert all(handle.get_result() == 1 for handle in handles)
        seconds = time.perf_counter() - started
        return {
            "workers": 1,
            "worker_concurrency": worker_concurrency,
            "executions": executions,
            "seconds": round(seconds, 3),
            "steps_per_second": round(executions * steps / seconds, 1),
            "load_before": before,
            "load_after": load(),
        }
    finally:
        DBOS.destroy()


def run_dbos(python: Path, server: str, args: argparse.Namespace, wc: int | None) -> dict:
    name = f"dbos_bench_queue_{uuid.uuid4().hex[:8]}"
    with scratch_database(server, name) as url:
        command = [
            str(python),
            str(Path(__file__).resolve()),
            "--dbos-only",
            url,
            "--executions",
            str(args.executions),
            "--steps",
            str(args.steps),
        ]
        if wc is not None:
            command += ["--dbos-worker-concurrency", str(wc)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the DBOS run failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the write limit --------------------------------------------------------------------------


def write_limit(server: str, threads: int, seconds: float) -> dict[str, Any]:
    import psycopg

    name = f"warroom_bench_writes_{uuid.uuid4().hex[:8]}"
    with scratch_database(server, name) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE w (id bigserial PRIMARY KEY, t int, v bytea)")
        counts = [0] * threads
        stop = threading.Event()

        def writer(t: int) -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                while not stop.is_set():
                    conn.execute(
                        "INSERT INTO w (t, v) VALUES (%s, %s)", (t, b"x" * 40), prepare=True
                    )
                    counts[t] += 1

        before = load()
        pool = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
        for thread in pool:
            thread.start()
        stop.wait(seconds)
        stop.set()
        for thread in pool:
            thread.join()
    return {
        "threads": threads,
        "rows_per_second": round(sum(counts) / seconds, 1),
        "load_before": before,
    }


# -- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=DEFAULT_SERVER)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--executions", type=int, default=300)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--write-seconds", type=float, default=5.0)
    parser.add_argument("--skip-dbos", action="store_true")
    parser.add_argument("--dbos-python", type=Path, default=DEFAULT_DBOS_PYTHON)
    parser.add_argument("--dbos-only", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--dbos-worker-concurrency", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dbos_only:
        figures = bench_dbos(
            args.dbos_only, args.executions, args.steps, args.dbos_worker_concurrency
        )
        print(json.dumps(figures))
        return 0
    results: dict[str, Any] = {}
    for workers in args.workers:
        results[f"warroom-{workers}w"] = bench_warroom(args.server, workers, args)
        print(f"warroom-{workers}w", results[f"warroom-{workers}w"], flush=True)
    if not args.skip_dbos:
        for wc in (None, args.concurrency):
            label = "dbos" if wc is None else f"dbos-wc{wc}"
            results[label] = run_dbos(args.dbos_python, args.server, args, wc)
            print(label, results[label], flush=True)
    for threads in (1, 2, 4, 8):
        results[f"write-limit-{threads}t"] = write_limit(args.server, threads, args.write_seconds)
        print(f"write-limit-{threads}t", results[f"write-limit-{threads}t"], flush=True)
    dbos = results.get("dbos", {}).get("steps_per_second")
    print(f"\n{'subject':<18} {'steps/s':>9} {'x dbos':>7} {'double':>7} {'load':>16}")
    for label, row in results.items():
        rate = row.get("steps_per_second") or row.get("rows_per_second")
        ratio = f"{rate / dbos:.2f}" if dbos and "steps_per_second" in row else "-"
        print(
            f"{label:<18} {rate:>9} {ratio:>7} {row.get('double_runs', '-')!s:>7} "
            f"{row['load_before']!s:>16}"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = OUT / f"queue-{stamp}.json"
    path.write_text(json.dumps({"at": stamp, "cpus": os.cpu_count(), "results": results}, indent=2))
    print(f"\nfigures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
