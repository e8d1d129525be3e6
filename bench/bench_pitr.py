"""Point-in-time recovery benchmark: base backups against pgBackRest, and ``warroom wal push``.

What it measures (issue 7), on a throwaway PostgreSQL cluster that it creates, loads and removes:

Base backup, on the same cluster, in one run
  1. ``pgbackrest --stanza=bench --type=full backup`` (Debian's ``pgbackrest``, run as the
     ``postgres`` OS user): ``compress-type=zst`` (its default level, 3), ``process-max=2``,
     ``start-fast=y``, default ``archive-check=y``: it waits until the WAL the backup needs is
     in its archive, which PostgreSQL fills with ``archive_command = 'pgbackrest ... archive-push
     %p'`` (set after the load; during the load the archive command is ``/bin/true``).
  2. ``warroom create database --physical --json`` (run as root, over TCP): ``pg_basebackup
     --format=tar --wal-method=fetch --checkpoint=fast -D -`` streamed through SHA-256 and zstd
     (level 3) into a fresh repository (``BACKUP_DIR``, SQLite catalog).
  Both produce a base backup that can be restored with the WAL it needs: pgBackRest's is the
  backup set plus the segments from its start to its stop in its WAL archive; ours carries
  that WAL inside ``base.tar``. The two run alternately (order swapped each round), ``--rounds``
  times (default 3); medians are reported with the ratios ours / theirs for time and stored size
  and the verdict against the target (at most 1.0x pgBackRest).
  For reference (``--no-reference`` skips them), each round also times ``pg_basebackup`` with
  the same options into ``/dev/null`` (the source alone: server, tar stream and pipe), piped
  into ``zstd -3 -T1`` and ``zstd -3 -T2`` (what one and two compression threads cost), and
  piped into our ``warroom.codec.Encoder`` alone (``threads=1``, what the backup uses, and
  ``threads=2``) in a bare Python process writing and fsyncing one file: the backup's
  streaming work without the CLI's start-up, catalog and server round trips. And our backup
  again at zstd levels 1 and 2 (``WARROOM_COMPRESSION_LEVEL``), because on this data they are
  both faster and smaller than level 3.

  Stored size: ours is every file of the backup under ``BACKUP_DIR/database/<name>/`` (its
  part and manifest); pgBackRest's is every file of the backup set directory
  (``backup/bench/<label>/``) and, in a second column, that plus its archived WAL segments from
  the backup's start to its stop. MB = 10^6 bytes. For every run: wall time (the command from
  start to exit), CPU seconds of the command's process tree (``wait4``: for ours, Python and
  ``pg_basebackup``), of the cluster's server processes (the postmaster, its live children and
  its reaped ones: the walsender that serves ``pg_basebackup``, the archiver's archive-push
  runs) and of the rest of the machine (``/proc/stat`` less both: if it is more than a few
  tenths of a second, something else was running). A ``CHECKPOINT`` precedes every step, then a
  wait (up to 60 s) for a nearly idle second. A run during which something else used more than
  1 CPU second is run again (at most 3 attempts; the discarded runs are kept in the JSON).
  pgBackRest's own console log (``--log-level-console=info``, timestamped) splits its time
  into preparing, checkpoint, copying, stopping (``pg_backup_stop`` waits for the archive) and
  finishing.

``wal push`` (PostgreSQL's archive command, one process per segment)
  ``--wal-calls`` (default 30) calls, each a fresh process started the way PostgreSQL's
  archiver starts it (``/bin/sh -c 'warroom wal push PATH'``), on real 16 MiB segments copied
  from the loaded cluster's ``pg_wal``, into a fresh repository: (a) new segments, (b) the same
  segments again (already archived: the idempotent path, read + SHA-256 + compare). Wall time
  per call from the parent (fork to exit): median, p95 and max, against the 150 ms target.
  The segments are spread evenly over what ``pg_wal`` holds after the load, so they mix highly
  compressible WAL (pgbench rows) and poorly compressible WAL (random payloads).
  For reference, the same way: ``python -c pass`` with the same interpreter (the start-up
  floor), ``python -c`` importing only the fast path's modules (start-up plus imports, no
  work), and ``pgbackrest archive-push`` (C, run as ``postgres``, into a second stanza) on the
  same segments. Three untimed calls of each kind warm the caches first. Then, in one warm
  process, the push's work step by step per segment (read, SHA-256, zstd level 1 with the
  stored SHA-256, write + fsync), and ``python -X importtime`` of one push.

Set-up: ``initdb`` (as ``postgres``, trust authentication) into a temporary directory under
/tmp, on a free port, ``wal_level=replica``, ``archive_mode=on``; the reference database is
loaded with ``../shared/bench/make-bench-db.sh warroom_bench postgresql://...:PORT``
(pgbench scale 50 plus 2 M text/jsonb rows, about 1.3 GB; about 20 s here), then read once
(an untimed ``pg_basebackup`` into /dev/null) so every step finds the files in the page cache.
PostgreSQL's defaults otherwise (shared_buffers 128 MB, max_wal_size 1 GB). The machine's own
server (port 5432) is not used. Another benchmark on this small machine would distort both,
so before the load and before the timed steps the script waits (polling every 30 s, at most 20
minutes) until no ``bench_database`` process is running.

``--wal-only`` skips the base backups (and the untimed read that warms them): the cluster is
loaded only to have real segments, and the ``wal push`` comparison runs alone (against
pgBackRest's archive-push, target: at most 0.8x its median). With ``--quick`` it takes about
a minute.

``--commit REV`` measures ``src/`` of that git revision (extracted with ``git archive`` and put
first on PYTHONPATH) instead of the working tree. ``--quick`` loads pgbench scale 10 instead of
the reference database (to try the script, not for figures).

Run (about 3.5 minutes on 2 cores)::

    .venv/bin/python bench/bench_pitr.py [--rounds 3] [--wal-calls 30] [--commit REV]
        [--no-reference] [--quick] [--wal-only] [--keep]

It prints the tables and verdicts and writes every figure to ``bench/out/pitr-<timestamp>.json``.
The cluster is stopped and the temporary directory removed at the end (``--keep`` keeps it,
with the cluster stopped).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchcommon import (
    BENCH_DIR,
    MAKE_DB,
    PROJECT_DIR,
    PYTHON,
    WARROOM,
    warroom_env,
    warroom_source,
)

DB = "warroom_bench"
STANZA = "bench"
MB = 1_000_000
SEGMENT = 16 * 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WAL_NAME = re.compile(r"^[0-9A-F]{24}$")
LABEL = re.compile(r"^\d{8}-\d{6}F$")  # a full backup set
QUIET_WAIT = 60.0
OTHER_BENCH_POLL = 30.0
OTHER_BENCH_WAIT = 20 * 60.0
TIME_TARGET = 1.0  # ours / pgBackRest, time and size
WAL_PUSH_TARGET_MS = 150.0
WAL_PUSH_TARGET_RATIO = 0.8  # issue 16: new segments, our median / pgBackRest archive-push's
WARMUP_CALLS = 3
NOISY_OTHER_CPU = 1.0  # CPU seconds used by something else during a run: run it again
NOISY_ATTEMPTS = 3


# Our encoder alone, without the CLI: stdin (pg_basebackup's tar) in 1 MiB reads, through
# warroom.codec.Encoder (SHA-256 of the plain and stored bytes, zstd level 3 on THREADS worker
# threads), written to a file and fsynced, as the repository's put does.
ENCODER_PIPE = """
import os, sys
from warroom.codec import Encoder
threads, path = int(sys.argv[1]), sys.argv[2]
chunks = iter(lambda: sys.stdin.buffer.read(1 << 20), b"")
with open(path, "wb") as out:
    for data in Encoder(level=3, threads=threads).encode(chunks):
        out.write(data)
    out.flush()
    os.fsync(out.fileno())
"""

# The work of one wal push, step by step in one process (milliseconds per segment): read the
# segment, SHA-256 it, zstd level 1 (WalArchive's level) with the codec's stored SHA-256, write
# and fsync the result and its directory.
WAL_STEPS = """
import hashlib, json, os, sys, time
from warroom.codec import Encoder
out_dir = sys.argv[1]
rows = []
for path in sys.argv[2:]:
    t0 = time.perf_counter()
    with open(path, "rb") as handle:
        data = handle.read()
    t1 = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    t2 = time.perf_counter()
    encoder = Encoder(level=1)
    chunks = (data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20))
    stored = b"".join(encoder.encode(chunks))
    t3 = time.perf_counter()
    target = os.path.join(out_dir, os.path.basename(path))
    with open(target, "wb") as out:
        out.write(stored)
        out.flush()
        os.fsync(out.fileno())
    fd = os.open(out_dir, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    t4 = time.perf_counter()
    rows.append([1000 * (t1 - t0), 1000 * (t2 - t1), 1000 * (t3 - t2), 1000 * (t4 - t3),
                 len(stored)])
print(json.dumps(rows))
"""


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


def newest_pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not found:
        sys.exit("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    return found[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return port if port != 5432 else free_port()


def tree_size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def machine_busy() -> float:
    """CPU seconds the whole machine has spent not idle since boot (all cores)."""
    with open("/proc/stat") as fh:
        ticks = [int(value) for value in fh.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICKS


def process_cpu(pid: int, reaped: bool = True) -> float:
    """utime + stime of ``pid`` (+ cutime + cstime: its waited-for descendants), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = [int(value) for value in fields[11:15]]
    return (sum(ticks) if reaped else ticks[0] + ticks[1]) / CLOCK_TICKS


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def other_bench_running() -> bool:
    found = subprocess.run(["pgrep", "-f", "bench_database"], capture_output=True, text=True)
    return bool(found.stdout.strip())


def wait_for_other_bench() -> float:
    """Wait (polling every 30 s, at most 20 minutes) until no bench_database process runs."""
    started = time.monotonic()
    while other_bench_running():
        waited = time.monotonic() - started
        if waited > OTHER_BENCH_WAIT:
            log("bench_database is still running after 20 minutes: measuring anyway")
            break
        log(f"bench_database is running: waiting ({waited:.0f} s so far)")
        time.sleep(OTHER_BENCH_POLL)
    return time.monotonic() - started


def wait_until_quiet(limit: float = QUIET_WAIT) -> float:
    """Wait (at most ``limit`` s) for a second in which the machine uses under 0.2 cores."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = machine_busy()
        time.sleep(1.0)
        if machine_busy() - before < 0.2:
            break
    waited = time.monotonic() - started
    if waited > 3:
        log(f"waited {waited:.0f} s for a quiet second")
    return waited


# -- one measured command --------------------------------------------------------------------


@dataclass
class Run:
    step: str
    round: int
    wall: float
    cpu_tree: float
    cpu_server: float
    cpu_other: float
    stored: int | None = None
    stored_with_wal: int | None = None
    reported_seconds: float | None = None
    detail: dict[str, object] = field(default_factory=dict)


class Cluster:
    """The throwaway PostgreSQL cluster: a data directory under ``work``, owned by postgres."""

    def __init__(self, pg_bin: Path, work: Path, port: int) -> None:
        self.pg_bin = pg_bin
        self.data = work / "data"
        self.sockets = work / "sockets"
        self.logfile = work / "postgres.log"
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}"
        self.running = False

    def as_postgres(self, argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(argv),
            user="postgres",
            group="postgres",
            extra_groups=[],
            cwd="/tmp",
            env={**os.environ, "HOME": "/var/lib/postgresql"},
            check=True,
            **kwargs,
        )

    def create(self, settings: dict[str, str]) -> None:
        for path in (self.data, self.sockets):
            path.mkdir(mode=0o700)
            shutil.chown(path, "postgres", "postgres")
        self.logfile.touch()
        shutil.chown(self.logfile, "postgres", "postgres")
        self.as_postgres(
            [
                self.pg_bin / "initdb",
                "-D",
                self.data,
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
            ],
            capture_output=True,
        )
        lines = [f"{key} = '{value}'" for key, value in settings.items()]
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n# bench_pitr.py\n" + "\n".join(lines) + "\n")

    def start(self) -> None:
        self.as_postgres(
            [self.pg_bin / "pg_ctl", "-D", self.data, "-l", self.logfile, "-w", "start"],
            capture_output=True,
        )
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.as_postgres(
                [self.pg_bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"],
                capture_output=True,
            )
            self.running = False

    def psql(self, query: str, db: str = "postgres") -> str:
        argv = [self.pg_bin / "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", f"{self.url}/{db}"]
        done = subprocess.run([*argv, "-c", query], check=True, capture_output=True, text=True)
        return done.stdout.strip()

    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def server_cpu(self) -> float:
        """CPU seconds of the postmaster, its live children and every reaped descendant."""
        root = self.postmaster()
        total = process_cpu(root)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if ppid == root:
                total += process_cpu(int(entry))
        return total


def measure(
    cluster: Cluster,
    step: str,
    round_: int,
    argv: Sequence[str],
    env: dict[str, str] | None = None,
    as_postgres: bool = False,
) -> tuple[Run, str]:
    """Run ``argv`` once (after a CHECKPOINT and a quiet second); return its figures and
    stdout. CPU of the tree comes from ``wait4``: the command and every descendant it reaped."""
    cluster.psql("CHECKPOINT")
    wait_until_quiet()
    extra: dict[str, object] = {}
    if as_postgres:
        extra = {"user": "postgres", "group": "postgres", "extra_groups": [], "cwd": "/tmp"}
        env = {**(env or os.environ), "HOME": "/var/lib/postgresql"}
    server0, machine0 = cluster.server_cpu(), machine_busy()
    started, epoch = time.perf_counter(), time.time()
    proc = subprocess.Popen(
        list(argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **extra
    )
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
    reader.start()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # not proc.wait(): wait4 gives the tree's CPU
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    time.sleep(0.2)  # let the walsender exit and be reaped before reading the server's CPU
    server = cluster.server_cpu() - server0
    machine = machine_busy() - machine0
    if proc.returncode != 0:
        message = b"".join(errors).decode(errors="replace")[-2000:]
        sys.exit(f"{step} failed ({proc.returncode}): {message}")
    tree = usage.ru_utime + usage.ru_stime
    run = Run(step, round_, wall, tree, server, max(0.0, machine - tree - server))
    run.detail["started_epoch"] = epoch
    return run, out.decode()


# -- the benchmark ---------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, source: Path | None) -> None:
        self.args = args
        self.work = work
        self.pg_bin = args.pg_bin
        self.cluster = Cluster(self.pg_bin, work, free_port())
        self.runs: list[Run] = []
        self.discarded: list[Run] = []  # runs during which something else used the CPU
        self.backups_taken = 0
        self.wal: dict[str, dict[str, object]] = {}
        self.notes: dict[str, object] = {}
        self.pgbr_conf = work / "pgbackrest.conf"
        self.pgbr_wal_conf = work / "pgbackrest-walpush.conf"
        self.pgbr_repo = work / "pgbackrest-repo"
        self.warroom_repo = work / "warroom-repo"
        self.warroom_env, self.warroom_file = warroom_env(self.warroom_repo, work, source)

    # -- set-up ---------------------------------------------------------------------------

    def postgres_dir(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(mode=0o750)
        shutil.chown(path, "postgres", "postgres")
        return path

    def pgbackrest_config(self, path: Path, repo: Path) -> None:
        c = self.cluster
        path.write_text(
            "[global]\n"
            f"repo1-path={repo}\n"
            "repo1-retention-full=99\n"
            f"log-path={self.work / 'pgbackrest-log'}\n"
            f"lock-path={self.work / 'pgbackrest-lock'}\n"
            f"spool-path={self.work / 'pgbackrest-spool'}\n"
            "log-level-console=warn\n"
            "log-level-file=off\n"
            "compress-type=zst\n"
            "process-max=2\n"
            "start-fast=y\n"
            f"\n[{STANZA}]\n"
            f"pg1-path={c.data}\n"
            f"pg1-port={c.port}\n"
            f"pg1-socket-path={c.sockets}\n"
            "pg1-user=postgres\n"
        )
        path.chmod(0o644)

    def set_up(self) -> None:
        c = self.cluster
        self.work.chmod(0o755)
        for name in ("pgbackrest-log", "pgbackrest-lock", "pgbackrest-spool"):
            self.postgres_dir(name)
        self.postgres_dir(self.pgbr_repo.name)
        wal_repo = self.postgres_dir("pgbackrest-walpush-repo")
        self.pgbackrest_config(self.pgbr_conf, self.pgbr_repo)
        self.pgbackrest_config(self.pgbr_wal_conf, wal_repo)
        log(f"initdb into {c.data}, port {c.port}")
        c.create(
            {
                "port": str(c.port),
                "listen_addresses": "127.0.0.1",
                "unix_socket_directories": str(c.sockets),
                "wal_level": "replica",
                "archive_mode": "on",
                "archive_command": "/bin/true",
            }
        )
        c.start()
        started = time.monotonic()
        if self.args.quick:
            log("loading pgbench scale 10 (--quick)")
            c.psql(f"CREATE DATABASE {DB}")
            subprocess.run(
                [self.pg_bin / "pgbench", "-i", "-s", "10", "-q", f"{c.url}/{DB}"],
                check=True,
                capture_output=True,
            )
        else:
            log(f"loading the reference database with {MAKE_DB}")
            subprocess.run(
                [MAKE_DB, DB, c.url],
                check=True,
                capture_output=True,
                env={**os.environ, "PATH": f"{self.pg_bin}:{os.environ['PATH']}"},
            )
        self.notes["load_seconds"] = round(time.monotonic() - started, 1)
        c.psql("CHECKPOINT")
        self.copy_segments()
        push = f"pgbackrest --config={self.pgbr_conf} --stanza={STANZA} archive-push %p"
        c.psql(f"ALTER SYSTEM SET archive_command = '{push}'")
        c.psql("SELECT pg_reload_conf()")
        for conf in (self.pgbr_conf, self.pgbr_wal_conf):
            c.as_postgres(
                ["pgbackrest", f"--config={conf}", f"--stanza={STANZA}", "stanza-create"],
                capture_output=True,
            )
        self.notes["database_bytes"] = int(c.psql(f"SELECT pg_database_size('{DB}')"))
        self.notes["cluster_bytes"] = int(
            c.psql("SELECT sum(pg_database_size(datname)) FROM pg_database")
        )
        self.notes["server_version"] = c.psql("SHOW server_version")
        self.notes["pgbackrest_version"] = subprocess.run(
            ["pgbackrest", "version"], capture_output=True, text=True
        ).stdout.strip()
        if self.args.wal_only:
            return
        log("reading the cluster once (untimed pg_basebackup into /dev/null)")
        with open(os.devnull, "wb") as sink:
            subprocess.run(self.basebackup_argv(), stdout=sink, check=True, capture_output=False)

    def copy_segments(self) -> None:
        """Copy real, full WAL segments from pg_wal (generating more if there are too few)."""
        c = self.cluster
        needed = self.args.wal_calls + WARMUP_CALLS
        for _ in range(200):
            names = sorted(
                entry.name
                for entry in (c.data / "pg_wal").iterdir()
                if WAL_NAME.fullmatch(entry.name) and entry.stat().st_size == SEGMENT
            )
            if len(names) >= needed:
                break
            c.psql(
                "CREATE TABLE IF NOT EXISTS walfill AS SELECT 1 AS id, ''::text AS v LIMIT 0;"
                "INSERT INTO walfill SELECT g, md5(g::text) || repeat('x', 200) "
                "FROM generate_series(1, 60000) g; SELECT pg_switch_wal()"
            )
        else:
            sys.exit(f"could not find {needed} WAL segments in {c.data / 'pg_wal'}")
        # Evenly spread over what pg_wal holds: the load's WAL is highly compressible where it
        # writes pgbench_accounts and nearly incompressible where it writes random payloads.
        picked = [names[i * len(names) // needed] for i in range(needed)]
        self.notes["wal_segments_available"] = len(names)
        target = self.work / "wal-source"
        target.mkdir(mode=0o755)
        for name in picked:
            shutil.copyfile(c.data / "pg_wal" / name, target / name)
            (target / name).chmod(0o644)
        self.segments = [target / name for name in picked]

    def basebackup_argv(self) -> list[str]:
        return [
            str(self.pg_bin / "pg_basebackup"),
            f"--dbname={self.cluster.url}/postgres",
            "--pgdata=-",
            "--format=tar",
            "--wal-method=fetch",
            "--checkpoint=fast",
            "--no-manifest",
        ]

    # -- base backups ---------------------------------------------------------------------

    def pgbackrest_backup(self, round_: int) -> Run:
        backups = self.pgbr_repo / "backup" / STANZA
        before = set(os.listdir(backups)) if backups.exists() else set()
        argv = ["pgbackrest", f"--config={self.pgbr_conf}", f"--stanza={STANZA}"]
        run, out = measure(
            self.cluster,
            "pgbackrest",
            round_,
            [*argv, "--type=full", "--log-level-console=info", "backup"],
            as_postgres=True,
        )
        phases = pgbackrest_phases(out, float(run.detail["started_epoch"]), run.wall)
        (label,) = {name for name in set(os.listdir(backups)) - before if LABEL.fullmatch(name)}
        info = self.cluster.as_postgres(
            [*argv, "info", "--output=json", f"--set={label}"], capture_output=True, text=True
        )
        (backup,) = json.loads(info.stdout)[0]["backup"]
        start, stop = backup["archive"]["start"], backup["archive"]["stop"]
        wal_bytes = 0
        for item in (self.pgbr_repo / "archive" / STANZA).rglob("*"):
            if item.is_file() and WAL_NAME.fullmatch(item.name[:24]):
                if start <= item.name[:24] <= stop:
                    wal_bytes += item.stat().st_size
        run.stored = tree_size(backups / label)
        run.stored_with_wal = run.stored + wal_bytes
        run.detail = {
            "phases": phases,
            "label": label,
            "wal": [start, stop],
            "size_original": backup["info"]["size"],
            "repo_size": backup["info"]["repository"]["delta"],
        }
        return run

    def warroom_backup(self, round_: int, level: int | None = None) -> Run:
        """``warroom create database --physical``; with ``level``, at that zstd level
        (WARROOM_COMPRESSION_LEVEL) instead of the default 3."""
        self.backups_taken += 1
        argv = [
            str(WARROOM),
            *("create", "database", "--physical", "--json"),
            *("--name", f"pitr-{self.backups_taken}", "--url", f"{self.cluster.url}/postgres"),
        ]
        env, step = self.warroom_env, "warroom"
        if level is not None:
            env = {**env, "WARROOM_COMPRESSION_LEVEL": str(level)}
            step = f"warroom, zstd level {level}"
        run, out = measure(self.cluster, step, round_, argv, env=env)
        summary = json.loads(out)
        run.stored = tree_size(self.warroom_repo / "database" / summary["name"])
        run.stored_with_wal = run.stored
        run.reported_seconds = summary.get("duration_seconds")
        run.detail = {
            key: summary.get(key) for key in ("name", "size_original", "size_stored", "parts")
        }
        return run

    def reference(self, round_: int, step: str, pipe: str | None) -> Run:
        """pg_basebackup into /dev/null, or piped into ``pipe`` (which writes to ``{out}``)."""
        base = " ".join(self.basebackup_argv())
        out = self.work / "reference.tar.zst"
        command = f"{base} > /dev/null" if pipe is None else f"{base} | {pipe.format(out=out)}"
        run, _ = measure(
            self.cluster,
            step,
            round_,
            ["/bin/bash", "-o", "pipefail", "-c", command],
            env=self.warroom_env,
        )
        if pipe is not None:
            run.stored = out.stat().st_size
            out.unlink()
        return run

    def base_backups(self) -> None:
        for round_ in range(1, self.args.rounds + 1):
            steps: list[Callable[[int], Run]] = [self.pgbackrest_backup, self.warroom_backup]
            if round_ % 2 == 0:
                steps.reverse()
            if not self.args.no_reference:
                encoder = f"{PYTHON} -c '{ENCODER_PIPE}'"
                references = [
                    ("pg_basebackup > /dev/null", None),
                    ("pg_basebackup | zstd -3 -T1", "zstd -3 -T1 -q -o {out}"),
                    ("pg_basebackup | zstd -3 -T2", "zstd -3 -T2 -q -o {out}"),
                    ("pg_basebackup | Encoder threads=1", encoder + " 1 {out}"),
                    ("pg_basebackup | Encoder threads=2", encoder + " 2 {out}"),
                ]
                steps += [
                    lambda r, step=step, pipe=pipe: self.reference(r, step, pipe)
                    for step, pipe in references
                ]
                steps += [lambda r, level=level: self.warroom_backup(r, level) for level in (1, 2)]
            for step in steps:
                for attempt in range(1, NOISY_ATTEMPTS + 1):
                    run = step(round_)
                    stored = f", {run.stored / MB:.1f} MB" if run.stored is not None else ""
                    if run.detail.get("phases"):
                        stored += f", phases {run.detail['phases']}"
                    log(
                        f"round {round_}: {run.step}: {run.wall:.2f} s{stored} (CPU tree "
                        f"{run.cpu_tree:.1f} s, server {run.cpu_server:.1f} s, other "
                        f"{run.cpu_other:.1f} s)"
                    )
                    if run.cpu_other <= NOISY_OTHER_CPU or attempt == NOISY_ATTEMPTS:
                        break
                    log(f"  something else used {run.cpu_other:.1f} s of CPU: run again")
                    self.discarded.append(run)
                self.runs.append(run)

    # -- wal push -------------------------------------------------------------------------

    def timed_calls(
        self, commands: list[str], env: dict[str, str], as_postgres: bool = False
    ) -> list[float]:
        extra: dict[str, object] = {}
        if as_postgres:
            extra = {"user": "postgres", "group": "postgres", "extra_groups": [], "cwd": "/tmp"}
            env = {**env, "HOME": "/var/lib/postgresql"}
        times = []
        for command in commands:
            started = time.perf_counter()
            done = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, **extra)
            times.append((time.perf_counter() - started) * 1000)
            if done.returncode != 0:
                sys.exit(f"{command} failed: {done.stderr.decode(errors='replace')}")
        return times

    def wal_push(self) -> None:
        repo = self.work / "wal-repo"
        env = {**self.warroom_env, "BACKUP_DIR": str(repo)}
        warm, measured = self.segments[:WARMUP_CALLS], self.segments[WARMUP_CALLS:]
        push = [f"{WARROOM} wal push {path}" for path in measured]
        floor = [f"{PYTHON} -c pass"] * len(measured)
        # Start-up plus the fast path's imports, without the work: what is left is the push.
        modules = "from warroom.cli import main; import warroom.cli.wal_fast, warroom.wal"
        imports = [f"{PYTHON} -c '{modules}'"] * len(measured)
        pgbr = f"pgbackrest --config={self.pgbr_wal_conf} --stanza={STANZA} archive-push"
        series: list[tuple[str, list[str], list[str], bool]] = [
            ("python -c pass (floor)", floor, floor[:WARMUP_CALLS], False),
            ("python: the fast path's imports only", imports, imports[:WARMUP_CALLS], False),
            (
                "warroom wal push: new segment",
                push,
                [f"{WARROOM} wal push {path}" for path in warm],
                False,
            ),
            ("warroom wal push: already archived", push, [], False),
            (
                "pgbackrest archive-push: new segment (reference)",
                [f"{pgbr} {path}" for path in measured],
                [f"{pgbr} {path}" for path in warm],
                True,
            ),
        ]
        for label, commands, warmup, as_postgres in series:
            wait_until_quiet()
            machine0 = machine_busy()
            self.timed_calls(warmup, env, as_postgres)
            times = self.timed_calls(commands, env, as_postgres)
            self.wal[label] = {
                "calls": len(times),
                "median_ms": statistics.median(times),
                "p95_ms": percentile(times, 0.95),
                "min_ms": min(times),
                "max_ms": max(times),
                "machine_cpu_s": machine_busy() - machine0,
                "times_ms": [round(t, 2) for t in times],
            }
            log(
                f"{label}: median {statistics.median(times):.1f} ms, "
                f"p95 {percentile(times, 0.95):.1f} ms"
            )
        stored = [p for p in (repo / "wal").rglob("*") if p.is_file() and p.suffix != ".json"]
        self.notes["wal_push_stored_mb_per_segment"] = (
            sum(p.stat().st_size for p in stored) / len(stored) / MB
        )
        # The same work in one warm process, step by step: what is not start-up.
        steps_dir = self.work / "wal-steps"
        steps_dir.mkdir()
        done = subprocess.run(
            [str(PYTHON), "-c", WAL_STEPS, str(steps_dir), *map(str, measured)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        rows = json.loads(done.stdout)
        columns = ["read", "sha256", "zstd -1 + stored sha256", "write + fsync"]
        self.notes["wal_push_steps_median_ms"] = {
            name: round(statistics.median(row[i] for row in rows), 2)
            for i, name in enumerate(columns)
        }
        self.notes["wal_push_steps_rows"] = rows
        new_times = self.wal["warroom wal push: new segment"]["times_ms"]
        self.wal["warroom wal push: new segment"]["stored_bytes"] = [row[4] for row in rows]
        squeezed = [t for t, row in zip(new_times, rows, strict=True) if row[4] < SEGMENT / 8]
        loose = [t for t, row in zip(new_times, rows, strict=True) if row[4] >= SEGMENT / 8]
        self.notes["wal_push_new_by_compressibility"] = {
            "stored < 2 MiB": {"calls": len(squeezed), "median_ms": _median(squeezed)},
            "stored >= 2 MiB": {"calls": len(loose), "median_ms": _median(loose)},
        }
        # Where one push's start-up goes: python -X importtime on a fresh segment copy.
        probe = self.work / "importtime"
        probe.mkdir()
        segment = probe / self.segments[0].name
        shutil.copyfile(self.segments[0], segment)
        done = subprocess.run(
            [str(PYTHON), "-X", "importtime", str(WARROOM), "wal", "push", str(segment)],
            env={**env, "BACKUP_DIR": str(probe / "repo")},
            capture_output=True,
            text=True,
            check=True,
        )
        self.notes["wal_push_imports"] = top_imports(done.stderr)
        self.notes["wal_push_imports_total_ms"] = round(
            sum(ms for _, ms in self.notes["wal_push_imports"]), 1
        )

    # -- report ---------------------------------------------------------------------------

    def medians(self) -> dict[str, dict[str, float | None]]:
        result: dict[str, dict[str, float | None]] = {}
        for step in dict.fromkeys(run.step for run in self.runs):
            runs = [run for run in self.runs if run.step == step]

            def med(values: list[float | None]) -> float | None:
                known = [v for v in values if v is not None]
                return statistics.median(known) if known else None

            result[step] = {
                "wall": med([r.wall for r in runs]),
                "stored": med([r.stored for r in runs]),
                "stored_with_wal": med([r.stored_with_wal for r in runs]),
                "cpu_tree": med([r.cpu_tree for r in runs]),
                "cpu_server": med([r.cpu_server for r in runs]),
                "cpu_other": med([r.cpu_other for r in runs]),
                "reported": med([r.reported_seconds for r in runs]),
            }
        return result

    def report(self) -> dict[str, object]:
        medians = self.medians()
        verdicts = self.report_base_backups(medians) if self.runs else {}
        verdicts["wal_push_ratio"] = self.report_wal_push()
        return {"medians": medians, "verdicts": verdicts}

    def report_base_backups(self, medians: dict[str, dict[str, float | None]]) -> dict[str, float]:
        print("\nBase backup of the same cluster (medians of", self.args.rounds, "rounds)")
        print(
            f"{'step':<34} {'wall s':>7}  {'runs, s':<20} {'stored MB':>9} {'+WAL MB':>8} "
            f"{'CPU tree':>8} {'server':>6} {'other':>6}"
        )
        for step, m in medians.items():
            runs = ", ".join(f"{r.wall:.2f}" for r in self.runs if r.step == step)
            stored = f"{m['stored'] / MB:9.1f}" if m["stored"] is not None else " " * 9
            with_wal = (
                f"{m['stored_with_wal'] / MB:8.1f}" if m["stored_with_wal"] is not None else ""
            )
            print(
                f"{step:<34} {m['wall']:7.2f}  {runs:<20} {stored} {with_wal:>8} "
                f"{m['cpu_tree']:8.1f} {m['cpu_server']:6.1f} {m['cpu_other']:6.1f}"
            )
        phases = [r.detail.get("phases") for r in self.runs if r.step == "pgbackrest"]
        if all(phases):
            split = {key: statistics.median(p[key] for p in phases) for key in phases[0]}
            self.notes["pgbackrest_phases_median"] = split
            print(
                "pgBackRest's phases (median s):", ", ".join(f"{k} {v}" for k, v in split.items())
            )
        ours, theirs = medians["warroom"], medians["pgbackrest"]
        verdicts = {
            "time_ratio": ours["wall"] / theirs["wall"],
            "size_ratio": ours["stored"] / theirs["stored"],
            "size_ratio_with_wal": ours["stored"] / theirs["stored_with_wal"],
        }
        print("\nAgainst the target (at most 1.0x pgBackRest):")
        for key, label in (
            ("time_ratio", "time"),
            ("size_ratio", "stored size (their backup set)"),
            ("size_ratio_with_wal", "stored size (their set + its archived WAL)"),
        ):
            ratio = verdicts[key]
            verdict = "met" if ratio <= TIME_TARGET else "NOT met"
            print(f"  {label}: {ratio:.2f}x -> {verdict}")
        print(f"  ours reports duration_seconds {ours['reported']:.2f} (wall {ours['wall']:.2f})")
        return verdicts

    def report_wal_push(self) -> float:
        """Print the wal push figures; return ours / pgBackRest's median for new segments."""
        print(f"\nwal push ({self.args.wal_calls} calls each, ms per call, wall from the parent)")
        print(f"{'':<50} {'median':>7} {'p95':>7} {'max':>7}")
        for label, figures in self.wal.items():
            print(
                f"{label:<50} {figures['median_ms']:7.1f} {figures['p95_ms']:7.1f} "
                f"{figures['max_ms']:7.1f}"
            )
        for label in ("warroom wal push: new segment", "warroom wal push: already archived"):
            p95 = self.wal[label]["p95_ms"]
            verdict = "met" if p95 < WAL_PUSH_TARGET_MS else "NOT met"
            print(f"  {label}: p95 {p95:.1f} ms against 150 ms -> {verdict}")
        ratio = (
            self.wal["warroom wal push: new segment"]["median_ms"]
            / self.wal["pgbackrest archive-push: new segment (reference)"]["median_ms"]
        )
        verdict = "met" if ratio <= WAL_PUSH_TARGET_RATIO else "NOT met"
        print(f"  new segment, median against pgBackRest's: {ratio:.2f}x (target 0.8x): {verdict}")
        print("\none wal push's work in a warm process (median ms per segment):")
        for name, ms in self.notes["wal_push_steps_median_ms"].items():
            print(f"  {name:<40} {ms:7.1f}")
        for name, figures in self.notes["wal_push_new_by_compressibility"].items():
            print(
                f"  new segment, {name}: {figures['calls']} calls, median {figures['median_ms']} ms"
            )
        total = self.notes["wal_push_imports_total_ms"]
        print(f"\nimports of one wal push (python -X importtime, cumulative ms, total {total}):")
        for name, ms in self.notes["wal_push_imports"][:8]:
            print(f"  {name:<40} {ms:7.1f}")
        return ratio


# pgBackRest's console log lines: "2026-11-26 17:29:38.123 P00   INFO: backup start archive = ..."
PGBR_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) P\d+ +\w+: (.*)$")
PGBR_MARKS = {
    "begin": "execute non-exclusive backup start",  # checks done; pg_backup_start called
    "started": "backup start archive",  # the checkpoint is done
    "copied": "execute non-exclusive backup stop",  # every file copied
    "stopped": "backup stop archive",  # pg_backup_stop returned (it waits for the archive)
}


def pgbackrest_phases(output: str, started: float, wall: float) -> dict[str, float]:
    """Seconds of a pgBackRest backup spent preparing (process start to pg_backup_start),
    in the checkpoint, copying the files, stopping (pg_backup_stop, which waits until the WAL
    the backup needs is archived) and finishing (archive check, manifest, expire, exit), from
    its console log (``--log-level-console=info``)."""
    seen: dict[str, float] = {}
    for line in output.splitlines():
        match = PGBR_LINE.match(line)
        if not match:
            continue
        stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        for mark, text in PGBR_MARKS.items():
            if match.group(2).startswith(text) and mark not in seen:
                seen[mark] = stamp - started
    if len(seen) != len(PGBR_MARKS):
        return {}
    return {
        "preparing": round(seen["begin"], 2),
        "checkpoint": round(seen["started"] - seen["begin"], 2),
        "copying": round(seen["copied"] - seen["started"], 2),
        "stopping": round(seen["stopped"] - seen["copied"], 2),
        "finishing": round(wall - seen["stopped"], 2),
    }


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def top_imports(importtime: str) -> list[tuple[str, float]]:
    """Top-level imports (and their cumulative time in ms) from ``python -X importtime``."""
    found = []
    for line in importtime.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", line)
        if match and len(match.group(2)) <= 1:
            found.append((match.group(3), int(match.group(1)) / 1000))
    return sorted(found, key=lambda item: -item[1])


def machine_description() -> dict[str, object]:
    model = ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cores": os.cpu_count(), "cpu": model, "kernel": platform.release()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="base-backup rounds (default 3)")
    parser.add_argument("--wal-calls", type=int, default=30, help="wal push calls (default 30)")
    parser.add_argument(
        "--commit", metavar="REV", help="measure src/ of this git revision, not the work tree"
    )
    parser.add_argument("--pg-bin", type=Path, default=None, help="PostgreSQL bin directory")
    parser.add_argument("--no-reference", action="store_true", help="skip pg_basebackup | zstd")
    parser.add_argument("--quick", action="store_true", help="pgbench scale 10, to try it out")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for bench_database")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--wal-only", action="store_true", help="only the wal push comparison (no base backups)"
    )
    args = parser.parse_args(argv)
    args.pg_bin = args.pg_bin or newest_pg_bin()
    if os.geteuid() != 0:
        sys.exit("run as root: the cluster and pgBackRest run as the postgres OS user")
    if shutil.which("pgbackrest") is None:
        sys.exit("pgbackrest is not installed (apt-get install -y pgbackrest)")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = Path(tempfile.mkdtemp(prefix="warroom-bench-pitr-", dir="/tmp"))
    waited = 0.0 if args.no_wait else wait_for_other_bench()
    source, code = warroom_source(args.commit, work)
    bench = Bench(args, work, source)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        bench.set_up()
        if not args.no_wait:
            waited += wait_for_other_bench()
        started = datetime.now(UTC)
        if not args.wal_only:
            bench.base_backups()
        bench.wal_push()
        summary = bench.report()
    finally:
        bench.cluster.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    out = BENCH_DIR / "out" / f"pitr-{stamp}.json"
    out.parent.mkdir(exist_ok=True)
    document = {
        "started": started.isoformat(),
        "code": code,
        "warroom_imported_from": bench.warroom_file,
        "machine": machine_description(),
        "pg_bin": str(args.pg_bin),
        "rounds": args.rounds,
        "waited_for_other_bench_seconds": round(waited),
        "notes": bench.notes,
        "runs": [asdict(run) for run in bench.runs],
        "discarded_runs": [asdict(run) for run in bench.discarded],
        "wal_push": bench.wal,
        **summary,
    }
    out.write_text(json.dumps(document, indent=2, default=str))
    print(f"\nfigures: {out.relative_to(PROJECT_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
