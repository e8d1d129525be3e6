"""Database-backup benchmark: ``warroom`` against ``pg_dump``/``pg_restore``, in one run.

What it measures, on one PostgreSQL database (default ``warroom_bench``: pgbench scale 50 plus
2 M text/jsonb rows, about 1.3 GB; created by ``../shared/bench/make-bench-db.sh`` only if it
is missing):

Backups (each writes to a file or repository under ``bench/out/run-<timestamp>/``)
  1. ``pg_dump -Fc -f FILE`` (default compression): the baseline the targets refer to;
  2. ``pg_dump -Fc -Z0 | zstd -T2 -o FILE``: a reference for "custom format + zstd";
  3. ``warroom create database --jobs 1`` and 4. ``--jobs 2`` (fresh repository and catalog).

Restores (each into a new database, dropped right after)
  5. ``createdb -T template0`` + ``pg_restore -d DB FILE`` of the ``-Fc`` file: the baseline;
  6. the same with ``pg_restore -j 2``, for reference;
  7. ``warroom restore database --jobs 1`` of the ``--jobs 1`` backup and
  8. ``--jobs 2`` of the ``--jobs 2`` backup (``warroom`` creates the database itself, checks
     every part's checksum first and every table's row count at the end).

For every step: wall time; stored size (file size, or the sum of the backup's files in the
repository: parts and manifest); CPU seconds of the process tree (``wait4``), of the PostgreSQL
server's processes and of the rest of the machine (``/proc/stat`` less both: the kernel's I/O
work, or something else running, which would make the step's figures suspect); which programs
ran when; and memory, three ways:

- ``own``: the peak RSS of the top process alone (the kernel's ``VmHWM``, read every 50 ms until
  it exits). For ``warroom`` this is the Python process, without its pg_dump/pg_restore children.
  This is the figure the "peak memory" target is judged on.
- ``tree``: the peak of the summed RSS of the top process and all its descendants (sampled every
  50 ms, so a short spike can be missed): what the machine must have free.
- ``maxrss``: ``ru_maxrss`` from ``wait4``, the largest single process of the tree (exactly what
  ``/usr/bin/time -f %M`` prints).

Before the timed steps the database is read once (an untimed ``pg_dump`` to /dev/null) so every
step finds it in the page cache. Before every step: a ``CHECKPOINT``, so no step pays for the
previous one's dirty buffers, then a wait (up to 5 minutes) for a second in which the machine is
nearly idle. With ``--repeat N`` the whole sequence runs N times (rounds, so that anything else
running spreads over all the steps) and each step's median run by wall time is reported, with
the highest memory figures of its runs; every run is kept in the JSON. Sizes and memory are in
MB = 10^6 bytes. On a machine with few cores, run nothing else heavy meanwhile: the "other CPU"
figure of each run shows whether something did.

``--commit REV`` measures ``src/`` of that git revision (extracted with ``git archive`` and put
first on PYTHONPATH) instead of the working tree, for figures that name an exact version.

Run (about 1.5 minutes per round on 2 cores)::

    .venv/bin/python bench/bench_database.py [--db warroom_bench] [--server URL] [--repeat N]
        [--commit REV] [--keep]

With ``--tables N`` it measures the same steps on a database of N tables of 20 rows each
(``warroom_bench_tables_N``, created if it is missing), where the catalog is the work: there the
backup target is 1.0x ``pg_dump -Fc`` (restore: 0.8x ``pg_restore``, as for the big database)::

    .venv/bin/python bench/bench_database.py --tables 3000 [--repeat N]

``--backups-only`` skips the restores (steps 5 to 8), for backup figures in a few minutes on a
busy machine.

It prints a table and the ratios against the issue's targets, and writes every figure to
``bench/out/results-<timestamp>.json``. Dumps and repositories are deleted at the end unless
``--keep`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from benchcommon import BENCH_DIR, MAKE_DB, PROJECT_DIR, WARROOM, warroom_env, warroom_source

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"
MB = 1_000_000
SAMPLE_SECONDS = 0.05
QUIET_CPU = 0.3  # before each step, wait for a second with less CPU than this in use...
QUIET_WAIT = 300  # ...but no longer than this (seconds)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The targets: ratios to pg_dump -Fc / pg_restore, and peak memory in MB.
BACKUP_TIME_TARGET = 0.5
MANY_TABLES_BACKUP_TARGET = 1.0  # --tables: the catalog, not the rows, is the work
ROWS_PER_TABLE = 20
SIZE_TARGET = 1.0
MEMORY_TARGET_MB = 200
RESTORE_TIME_TARGET = 0.8


# -- measuring one command ------------------------------------------------------------------


@dataclass
class Measurement:
    """Everything measured about one command (sizes and memory in bytes, times in seconds)."""

    label: str
    wall: float
    tree_cpu: float
    server_cpu: float
    machine_cpu: float
    own_peak: int
    tree_peak: int
    maxrss: int
    cpu_by_program: dict[str, float] = field(default_factory=dict)
    peak_by_program: dict[str, int] = field(default_factory=dict)
    timeline: list[tuple[str, float, float]] = field(default_factory=list)
    size: int | None = None
    reported: dict[str, object] = field(default_factory=dict)

    @property
    def other_cpu(self) -> float:
        """CPU seconds of neither the tree nor the server: kernel I/O work, or interference."""
        return self.machine_cpu - self.tree_cpu - self.server_cpu


def _proc_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, program name, CPU seconds so far) for every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields[0] is field 3 of proc(5): state; ppid is field 4, utime 14, stime 15.
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        table[int(entry)] = (int(fields[1]), name, cpu)
    return table


def _memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process in bytes; zeros once it has exited."""
    values = {"VmRSS:": 0, "VmHWM:": 0}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                words = line.split()
                if words and words[0] in values:
                    values[words[0]] = int(words[1]) * 1024
    except OSError:
        pass
    return values["VmRSS:"], values["VmHWM:"]


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent not idle since boot (all cores)."""
    with open("/proc/stat") as fh:
        ticks = [int(value) for value in fh.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / CLOCK_TICKS


@dataclass
class Seen:
    """One process of the tree as last sampled: times in seconds from the command's start."""

    name: str
    peak: int = 0
    cpu: float = 0.0
    first: float = 0.0
    last: float = 0.0


class TreeSampler(threading.Thread):
    """Samples the memory and CPU of a process and its descendants until stopped, and the CPU
    used meanwhile by PostgreSQL's server processes (all named ``postgres``)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.root = 0
        self.started = 0.0
        self.own_peak = 0
        self.tree_peak = 0
        self.seen: dict[int, Seen] = {}
        self.server_before = self._server_cpu(_proc_table())
        self.server_now = dict(self.server_before)
        self._done = threading.Event()

    @staticmethod
    def _server_cpu(table: dict[int, tuple[int, str, float]]) -> dict[int, float]:
        return {pid: cpu for pid, (_ppid, name, cpu) in table.items() if name == "postgres"}

    @property
    def server_cpu(self) -> float:
        """CPU seconds of the server's processes since this sampler was made."""
        return sum(cpu - self.server_before.get(pid, 0.0) for pid, cpu in self.server_now.items())

    def watch(self, root: int, started: float) -> None:
        self.root, self.started = root, started
        self.start()

    def run(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(SAMPLE_SECONDS)

    def sample(self) -> None:
        table = _proc_table()
        self.server_now.update(self._server_cpu(table))
        children: dict[int, list[int]] = {}
        for pid, (ppid, _name, _cpu) in table.items():
            children.setdefault(ppid, []).append(pid)
        tree, pending = [], [self.root]
        while pending:
            pid = pending.pop()
            if pid in table:
                tree.append(pid)
                pending.extend(children.get(pid, []))
        now = time.monotonic() - self.started
        total = 0
        for pid in tree:
            rss, hwm = _memory(pid)
            if rss == 0 and hwm == 0:
                continue  # a zombie: its figures are gone, keep the last ones
            _ppid, name, cpu = table[pid]
            seen = self.seen.setdefault(pid, Seen(name, first=now))
            seen.name, seen.cpu, seen.last = name, cpu, now  # the name changes at exec
            seen.peak = max(seen.peak, hwm)
            total += rss
        self.own_peak = self.seen[self.root].peak if self.root in self.seen else 0
        self.tree_peak = max(self.tree_peak, total)

    def stop(self) -> None:
        self._done.set()
        self.join()


def measure(
    label: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[Measurement, str]:
    """Run ``argv`` to completion; return its measurement and its standard output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sampler = TreeSampler()
        busy_before = _machine_busy()
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd)
        sampler.watch(proc.pid, started)
        # wait4 instead of Popen.wait: it also returns the tree's rusage (CPU, ru_maxrss).
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        machine_cpu = _machine_busy() - busy_before
        sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"{label} failed (exit code {proc.returncode}):\n{stderr.strip()}")
    cpu_by_program: dict[str, float] = {}
    peak_by_program: dict[str, int] = {}
    for seen in sampler.seen.values():
        cpu_by_program[seen.name] = round(cpu_by_program.get(seen.name, 0.0) + seen.cpu, 2)
        peak_by_program[seen.name] = max(peak_by_program.get(seen.name, 0), seen.peak)
    children = [seen for pid, seen in sampler.seen.items() if pid != proc.pid]
    timeline = [(seen.name, round(seen.first, 2), round(seen.last, 2)) for seen in children]
    measurement = Measurement(
        label=label,
        wall=round(wall, 3),
        tree_cpu=round(usage.ru_utime + usage.ru_stime, 2),
        server_cpu=round(sampler.server_cpu, 2),
        machine_cpu=round(machine_cpu, 2),
        own_peak=sampler.own_peak,
        tree_peak=sampler.tree_peak,
        maxrss=usage.ru_maxrss * 1024,
        cpu_by_program=cpu_by_program,
        peak_by_program=peak_by_program,
        timeline=sorted(timeline, key=lambda span: span[1]),
    )
    return measurement, stdout


# -- the database and its tools ---------------------------------------------------------------


class Server:
    """The PostgreSQL server under test and its client programs."""

    def __init__(self, url: str, bin_dir: Path) -> None:
        self.url = url.rstrip("/")
        self.bin = bin_dir

    def tool(self, name: str) -> str:
        return str(self.bin / name)

    def psql(self, sql: str, db: str = "postgres") -> str:
        argv = [self.tool("psql"), "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql, self.db_url(db)]
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()

    def db_url(self, db: str) -> str:
        return f"{self.url}/{db}"

    def exists(self, db: str) -> bool:
        return self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{db}'") == "1"

    def size(self, db: str) -> int:
        return int(self.psql(f"SELECT pg_database_size('{db}')"))

    def drop(self, db: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    def checkpoint(self) -> None:
        self.psql("CHECKPOINT")


def find_bin_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if found:
        return found[-1]
    psql = shutil.which("psql")
    if psql is None:
        sys.exit("no PostgreSQL client programs found; pass --pg-bin DIR")
    return Path(psql).parent


def ensure_database(server: Server, db: str) -> None:
    if server.exists(db):
        return
    print(f"database {db} is missing: creating it with {MAKE_DB} (takes a few minutes)")
    subprocess.run(["bash", str(MAKE_DB), db, server.url], check=True)


def ensure_many_tables(server: Server, db: str, tables: int) -> None:
    """A database of ``tables`` tables (a serial key, a text and an int column) of
    ROWS_PER_TABLE rows each, one transaction per table (the lock table would overflow)."""
    if server.exists(db):
        return
    print(f"creating {db}: {tables} tables of {ROWS_PER_TABLE} rows")
    server.psql(f'CREATE DATABASE "{db}"')
    server.psql(
        f"DO $$ BEGIN FOR i IN 1..{tables} LOOP "
        "EXECUTE format('CREATE TABLE t%s (id serial PRIMARY KEY, v text, n int)', i); "
        "EXECUTE format('INSERT INTO t%s (v, n) SELECT md5(g::text), g "
        f"FROM generate_series(1, {ROWS_PER_TABLE}) g', i); COMMIT; END LOOP; END $$",
        db,
    )


def tree_size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


# -- the steps ------------------------------------------------------------------------------


class Bench:
    """The steps, run against one database, with warroom's repository and catalog in ``work``."""

    def __init__(
        self,
        server: Server,
        db: str,
        work: Path,
        repeat: int,
        source: Path | None,
        restores: bool = True,
    ) -> None:
        self.restores = restores
        self.server = server
        self.db = db
        self.work = work
        self.repeat = repeat
        self.repo = work / "repo"
        self.results: dict[str, Measurement] = {}
        self.runs: dict[str, list[Measurement]] = {}
        self.warroom_env, self.warroom_file = warroom_env(self.repo, work, source)
        self.quiet_wait = QUIET_WAIT

    def wait_until_quiet(self) -> None:
        """Wait (at most ``quiet_wait`` seconds) until the machine is nearly idle for a second."""
        deadline = time.monotonic() + self.quiet_wait
        while True:
            before = _machine_busy()
            time.sleep(1.0)
            busy = _machine_busy() - before
            if busy < QUIET_CPU or time.monotonic() > deadline:
                break
            print(f"    (machine busy: {busy:.2f} CPU-s in the last second; waiting)")

    def measure_step(self, key: str, label: str, run: Callable[[], Measurement]) -> None:
        self.server.checkpoint()
        self.wait_until_quiet()
        result = run()
        self.runs.setdefault(key, []).append(result)
        print(f"  {label:<40} {result.wall:6.1f} s   other CPU {result.other_cpu:4.1f} s")

    def warm_up(self) -> None:
        dump = [self.server.tool("pg_dump"), "-Fc", "-Z0", self.server.db_url(self.db)]
        subprocess.run(dump, check=True, stdout=subprocess.DEVNULL)

    # backups

    def pg_dump(self) -> Measurement:
        target = self.work / "pg_dump-Fc.dump"
        argv = [self.server.tool("pg_dump"), "-Fc", "-f", str(target), self.server.db_url(self.db)]
        result, _ = measure("pg_dump -Fc", argv)
        result.size = target.stat().st_size
        return result

    def pg_dump_zstd(self) -> Measurement:
        target = self.work / "pg_dump-Z0.dump.zst"
        script = 'set -o pipefail; "$0" -Fc -Z0 "$1" | zstd -q -f -T2 -o "$2"'
        argv = ["bash", "-c", script, self.server.tool("pg_dump"), self.server.db_url(self.db)]
        result, _ = measure("pg_dump -Fc -Z0 | zstd -T2", [*argv, str(target)])
        result.size = target.stat().st_size
        return result

    def warroom_backup(self, jobs: int, i: int) -> Measurement:
        name = f"bench-j{jobs}-{i}"
        argv = [str(WARROOM), "create", "database", "--url", self.server.db_url(self.db)]
        argv += ["--name", name, "--jobs", str(jobs), "--json"]
        result, stdout = measure(
            f"warroom backup -j{jobs}", argv, env=self.warroom_env, cwd=self.work
        )
        doc = json.loads(stdout)
        result.size = tree_size(self.repo / "database" / name)
        result.reported = {key: doc[key] for key in ("duration_seconds", "size_stored")}
        result.reported["parts"] = len(doc["parts"])
        return result

    # restores

    def restore_target(self) -> str:
        name = f"{self.db}_bench_restore_{os.getpid()}"
        self.server.drop(name)
        return name

    def pg_restore(self, jobs: int) -> Measurement:
        target = self.restore_target()
        dump = self.work / "pg_dump-Fc.dump"
        script = (  # createdb on the server under test (--server), not the default one
            '"$0/createdb" --maintenance-db="$1/postgres" -T template0 "$2" '
            '&& "$0/pg_restore" "$3" -d "$1/$2" "$4"'
        )
        jobs_arg = f"--jobs={jobs}"  # --jobs=1 is pg_restore's default: one job
        argv = ["bash", "-c", script, str(self.server.bin), self.server.url, target, jobs_arg]
        try:
            result, _ = measure(f"pg_restore -j{jobs}", [*argv, str(dump)])
        finally:
            self.server.drop(target)
        return result

    def warroom_restore(self, jobs: int, i: int) -> Measurement:
        """Restore this round's backup made with the same ``--jobs``."""
        target = self.restore_target()
        argv = [str(WARROOM), "restore", "database", f"bench-j{jobs}-{i}"]
        argv += ["--new-db", target, "--url", self.server.db_url("postgres")]
        argv += ["--jobs", str(jobs), "--json"]
        try:
            result, stdout = measure(
                f"warroom restore -j{jobs}", argv, env=self.warroom_env, cwd=self.work
            )
        finally:
            self.server.drop(target)
        doc = json.loads(stdout)
        result.reported = {key: doc[key] for key in ("duration_seconds", "tables_checked", "rows")}
        return result

    def run(self) -> None:
        """Every step once per round, so anything else running spreads over all the steps;
        each step's reported run is its median by wall time."""
        print("warm-up: reading the database once (untimed)")
        self.warm_up()
        for i in range(self.repeat):
            print(f"round {i + 1} of {self.repeat}:")
            self.measure_step("pg_dump", "pg_dump -Fc", self.pg_dump)
            self.measure_step("pg_dump_zstd", "pg_dump -Fc -Z0 | zstd -T2", self.pg_dump_zstd)
            for jobs in (1, 2):
                self.measure_step(
                    f"warroom_backup_j{jobs}",
                    f"warroom create database --jobs {jobs}",
                    partial(self.warroom_backup, jobs, i),
                )
            if not self.restores:
                continue
            for jobs in (1, 2):
                self.measure_step(
                    f"pg_restore_j{jobs}",
                    f"pg_restore -j {jobs} of the -Fc file",
                    partial(self.pg_restore, jobs),
                )
            for jobs in (1, 2):
                self.measure_step(
                    f"warroom_restore_j{jobs}",
                    f"warroom restore database --jobs {jobs}",
                    partial(self.warroom_restore, jobs, i),
                )
        self.results = {key: aggregate(runs) for key, runs in self.runs.items()}


# -- reporting ------------------------------------------------------------------------------


def aggregate(runs: Sequence[Measurement]) -> Measurement:
    """The run with the median wall time, with the highest memory figures of all the runs."""
    median = sorted(runs, key=lambda m: m.wall)[(len(runs) - 1) // 2]
    return replace(
        median,
        own_peak=max(m.own_peak for m in runs),
        tree_peak=max(m.tree_peak for m in runs),
        maxrss=max(m.maxrss for m in runs),
    )


def report_runs(runs: Mapping[str, Sequence[Measurement]]) -> None:
    print("\nevery run, in order: wall s (other CPU s) own MB")
    for measured in runs.values():
        figures = ", ".join(f"{m.wall:.1f} ({m.other_cpu:.1f}) {_mb(m.own_peak)}" for m in measured)
        print(f"  {measured[0].label:<28}{figures}")


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / MB:.0f}"


def verdicts(
    results: Mapping[str, Measurement], backup_target: float = BACKUP_TIME_TARGET
) -> list[tuple[str, float, float, bool]]:
    """(what, measured, limit, met) for every target and configuration (the restore's only
    when restores were measured)."""
    base_dump = results["pg_dump"]
    rows = []
    for jobs in (1, 2):
        backup = results[f"warroom_backup_j{jobs}"]
        assert backup.size is not None and base_dump.size is not None
        checks = [
            ("backup wall / pg_dump -Fc", backup.wall / base_dump.wall, backup_target),
            ("stored size / pg_dump -Fc", backup.size / base_dump.size, SIZE_TARGET),
            ("backup peak memory, MB", backup.own_peak / MB, MEMORY_TARGET_MB),
        ]
        if "pg_restore_j1" in results:
            restore, base_restore = results[f"warroom_restore_j{jobs}"], results["pg_restore_j1"]
            checks += [
                ("restore peak memory, MB", restore.own_peak / MB, MEMORY_TARGET_MB),
                (
                    "restore wall / pg_restore",
                    restore.wall / base_restore.wall,
                    RESTORE_TIME_TARGET,
                ),
            ]
        for what, value, limit in checks:
            met = value < limit if "memory" in what else value <= limit
            rows.append((f"--jobs {jobs}: {what}", value, limit, met))
    return rows


def report(results: Mapping[str, Measurement], backup_target: float = BACKUP_TIME_TARGET) -> None:
    header = (
        f"{'step':<28}{'wall s':>7}{'MB':>5}{'own MB':>7}{'tree MB':>8}{'maxrss':>7}"
        f"{'CPU s: tree':>12}{'server':>7}{'other':>6}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for m in results.values():
        print(
            f"{m.label:<28}{m.wall:>7.1f}{_mb(m.size):>5}{_mb(m.own_peak):>7}"
            f"{_mb(m.tree_peak):>8}{_mb(m.maxrss):>7}{m.tree_cpu:>12.1f}{m.server_cpu:>7.1f}"
            f"{m.other_cpu:>6.1f}"
        )
    print(
        "own: the top process's peak RSS; tree: peak of the summed RSS of the process tree;\n"
        "maxrss: the largest single process (/usr/bin/time %M). CPU: the process tree, the\n"
        "PostgreSQL server, and the rest of the machine (kernel I/O work, anything else running)."
    )
    print("\nwhere the time and memory go in the median run, by program (sampled every 50 ms):")
    for m in results.values():
        print(f"  {m.label}" + (f": warroom reported {m.reported}" if m.reported else ""))
        print("    CPU s   " + ", ".join(f"{n} {cpu:.1f}" for n, cpu in m.cpu_by_program.items()))
        print("    peak MB " + ", ".join(f"{n} {_mb(b)}" for n, b in m.peak_by_program.items()))
        if m.timeline:
            spans = ", ".join(f"{n} {first:.1f}-{last:.1f}" for n, first, last in m.timeline)
            print(f"    children alive (s from start): {spans}")
    print("\nratios:")
    dump, zstd = results["pg_dump"], results["pg_dump_zstd"]
    for jobs in (1, 2):
        ours = results[f"warroom_backup_j{jobs}"]
        assert ours.size is not None and dump.size is not None and zstd.size is not None
        print(
            f"  backup -j{jobs}: wall {ours.wall / dump.wall:.2f}x pg_dump -Fc, "
            f"{ours.wall / zstd.wall:.2f}x pg_dump|zstd; size {ours.size / dump.size:.2f}x "
            f"pg_dump -Fc, {ours.size / zstd.size:.2f}x pg_dump|zstd"
        )
    for jobs in (1, 2) if "pg_restore_j1" in results else ():
        ours, restore = results[f"warroom_restore_j{jobs}"], results["pg_restore_j1"]
        print(
            f"  restore -j{jobs}: wall {ours.wall / restore.wall:.2f}x pg_restore, "
            f"{ours.wall / results['pg_restore_j2'].wall:.2f}x pg_restore -j2"
        )
    print("\ntargets (memory: the Python process's own peak, VmHWM, highest of the runs):")
    for what, value, limit, met in verdicts(results, backup_target):
        comparison = "<" if "memory" in what else "<="
        print(f"  {what:<42} {value:7.2f} {comparison} {limit:<5g} {'met' if met else 'NOT met'}")


# -- main -----------------------------------------------------------------------------------


def machine() -> dict[str, object]:
    with open("/proc/meminfo") as fh:
        total_kb = int(fh.readline().split()[1])
    with open("/proc/cpuinfo") as fh:
        model = next((line.split(":", 1)[1].strip() for line in fh if "model name" in line), "")
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(total_kb / 2**20, 1),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="database to back up (default: warroom_bench)")
    parser.add_argument(
        "--tables", type=int, metavar="N", help=f"a database of N tables of {ROWS_PER_TABLE} rows"
    )
    parser.add_argument("--server", default=DEFAULT_SERVER, help="server URL, no database")
    parser.add_argument("--pg-bin", help="PostgreSQL client programs (default: newest found)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; median time, highest memory")
    parser.add_argument("--keep", action="store_true", help="keep dumps and repository")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=QUIET_WAIT,
        metavar="S",
        help=f"wait at most S seconds for an idle machine before each step ({QUIET_WAIT})",
    )
    parser.add_argument(
        "--commit", metavar="REV", help="measure src/ of this git revision, not the work tree"
    )
    parser.add_argument("--report", metavar="JSON", help="print an earlier run's report again")
    parser.add_argument(
        "--backups-only", action="store_true", help="skip the restores (steps 5 to 8)"
    )
    return parser.parse_args(argv)


def reprint(results_file: Path) -> None:
    """Print the report of an earlier run again, from its JSON."""
    info = json.loads(results_file.read_text())
    runs = {
        key: [Measurement(**{**m, "timeline": [tuple(t) for t in m["timeline"]]}) for m in runs]
        for key, runs in info["all_runs"].items()
    }
    print(
        f"{info['database']}: {info['database_bytes'] / MB:.0f} MB on PostgreSQL "
        f"{info['server_version']}; {info['machine']}; {info['date']}; code: {info['code']}"
    )
    report_runs(runs)
    results = {key: aggregate(measured) for key, measured in runs.items()}
    report(results, _backup_target(info.get("tables")))


def _backup_target(tables: object) -> float:
    return MANY_TABLES_BACKUP_TARGET if tables else BACKUP_TIME_TARGET


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report:
        reprint(Path(args.report))
        return
    server = Server(args.server, find_bin_dir(args.pg_bin))
    if args.tables:
        args.db = args.db or f"warroom_bench_tables_{args.tables}"
        ensure_many_tables(server, args.db, args.tables)
    else:
        args.db = args.db or "warroom_bench"
        ensure_database(server, args.db)
    backup_target = _backup_target(args.tables)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = BENCH_DIR / "out"
    work = out / f"run-{stamp}"
    work.mkdir(parents=True)
    host = machine()
    source, code = warroom_source(args.commit, work)
    info: dict[str, object] = {
        "date": stamp,
        "machine": host,
        "code": code,
        "database": args.db,
        "database_bytes": server.size(args.db),
        "server_version": server.psql("SHOW server_version"),
        "repeat": args.repeat,
        "tables": args.tables,
    }
    print(
        f"{args.db}: {server.size(args.db) / MB:.0f} MB on PostgreSQL {info['server_version']}; "
        f"{host['nproc']} cores, {host['memory_gib']} GiB; warroom code: {code}"
    )
    bench = Bench(server, args.db, work, args.repeat, source, restores=not args.backups_only)
    bench.quiet_wait = args.quiet_wait
    try:
        bench.run()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    info["warroom_imported_from"] = bench.warroom_file
    report_runs(bench.runs)
    report(bench.results, backup_target)
    results_file = out / f"results-{stamp}.json"
    info["results"] = {key: asdict(m) for key, m in bench.results.items()}
    info["all_runs"] = {key: [asdict(m) for m in runs] for key, runs in bench.runs.items()}
    info["targets"] = [
        {"what": what, "value": round(value, 3), "limit": limit, "met": met}
        for what, value, limit, met in verdicts(bench.results, backup_target)
    ]
    results_file.write_text(json.dumps(info, indent=2) + "\n")
    print(f"\nfigures written to {results_file.relative_to(PROJECT_DIR)}")


if __name__ == "__main__":
    main()
