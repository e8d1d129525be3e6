"""PostgreSQL's client programs behind a class, as Barman does it.

:func:`find_tools` finds ``pg_dump`` and ``pg_restore`` no older than the server, or the
server's own programs (``pg_ctl``) at its exact version (in ``WARROOM_PG_BIN_DIR``, else the
newest ``/usr/lib/postgresql/*/bin``, else ``PATH``); :class:`PgProcess` runs one of them and
raises :class:`~warroom.errors.DatabaseError` with the exit code and the tool's stderr (secrets
removed) when it fails; :func:`run_tool` runs one to its end, as another OS user if need be.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, TypeVar

from warroom.errors import ConfigurationError, DatabaseError
from warroom.redact import redact_text

__all__ = [
    "PgProcess",
    "PgTool",
    "ProcessGroup",
    "find_tools",
    "newest_first",
    "run_parallel",
    "run_tool",
]

READ_CHUNK = 1 << 20
T = TypeVar("T")
R = TypeVar("R")
A = TypeVar("A")
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+(?:\.\d+)*)")


@dataclass(frozen=True)
class PgTool:
    name: str
    path: str
    version: str

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


def _probe(path: str) -> PgTool | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(out.stdout)
    if out.returncode != 0 or not match:
        return None
    return PgTool(Path(path).name, path, match.group(1))


def newest_first(paths: Iterable[str]) -> list[str]:
    """``/usr/lib/postgresql/<version>/bin/...`` paths, the newest version first (16 before
    9.6: versions compare as numbers, part by part)."""

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", Path(path).parent.parent.name))

    return sorted(paths, key=version, reverse=True)


def _candidates(name: str, bin_dir: Path | None) -> list[str]:
    if bin_dir is not None:
        return [str(bin_dir / name)]
    found = newest_first(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    on_path = shutil.which(name)
    return found + ([on_path] if on_path else [])


def find_tools(
    server_major: int, bin_dir: Path | None, *names: str, exact: bool = False
) -> dict[str, PgTool]:
    """Each named tool at a version no older than the server's major version; with ``exact``
    (the server's own programs, pg_ctl and pg_controldata: a data directory runs only under
    its own major version), at that version. Candidates are probed newest first and the
    first usable one is taken: the rest (Debian's ``pg_wrapper`` on PATH is a Perl script
    that costs a backup tens of milliseconds per probe) run only when it is not there."""
    tools: dict[str, PgTool] = {}
    for name in names:
        seen: list[PgTool] = []
        for path in _candidates(name, bin_dir):
            tool = _probe(path)
            if tool is None:
                continue
            if (tool.major == server_major) if exact else (tool.major >= server_major):
                tools[name] = tool
                break
            seen.append(tool)
        if name in tools:
            continue
        where = f"in {bin_dir}" if bin_dir else "in /usr/lib/postgresql/*/bin or on PATH"
        wanted = f"PostgreSQL {server_major}'s {name}" if exact else name
        if seen:
            found = ", ".join(f"{t.path} ({t.version})" for t in seen)
            relation = "is not" if exact else "is older than"
            problem = f"{name} {relation} the server's version ({server_major}): found {found}"
        else:
            problem = f"{wanted} was not found {where}"
        package = f"postgresql-{server_major}" if exact else f"postgresql-client-{server_major}"
        raise ConfigurationError(
            f"{problem}; install the PostgreSQL {server_major} "
            f"{'server' if exact else 'client tools'} (e.g. apt-get install {package}) or set "
            "WARROOM_PG_BIN_DIR to their directory",
            tool=name,
        )
    return tools


def run_tool(
    tool: PgTool, args: list[str], *, as_user: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``tool`` to its end, its output captured as text; as OS user ``as_user`` (through
    ``runuser``, when we are root) when given. The caller reads the exit code. A program that
    cannot be started (``runuser`` missing) is a ConfigurationError naming it."""
    command = [tool.path, *args]
    if as_user is not None:
        command = ["runuser", "-u", as_user, "--", *command]
    try:
        return subprocess.run(command, capture_output=True, text=True)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot run {command[0]}: {exc.strerror}"
            + ("; runuser (util-linux) is needed to run the server as its user" if as_user else ""),
            tool=tool.name,
        ) from exc


class PgProcess:
    """One running client program; stderr goes to a temporary file so no pipe can fill up.

    Use as a context manager: leaving the block early (an error, Ctrl-C) kills the process.
    """

    def __init__(
        self,
        tool: PgTool,
        args: list[str],
        *,
        env: dict[str, str],
        secrets: tuple[str | None, ...] = (),
        stdin: int | None = None,
        stdout: int | None = None,
        group: ProcessGroup | None = None,
    ) -> None:
        self.tool = tool
        self._secrets = secrets
        self._group = group
        self._stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                [tool.path, *args],
                stdin=stdin,
                stdout=stdout,
                stderr=self._stderr,
                env={**os.environ, **env},
            )
        except OSError as exc:
            self._stderr.close()
            raise ConfigurationError(f"cannot run {tool.path}: {exc.strerror}") from exc
        if group is not None:
            group.add(self)

    def __enter__(self) -> PgProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._group is not None:
            self._group.discard(self)
        self.terminate()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self._stderr.close()

    def terminate(self) -> None:
        """Stop the program if it still runs (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    @property
    def stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None
        return self.proc.stdin

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return redact_text(text, *self._secrets)

    def stream_stdout(self) -> Iterator[bytes]:
        """The program's output in chunks; raises DatabaseError if it then exits non-zero."""
        while chunk := self.stdout.read(READ_CHUNK):
            yield chunk
        self.check()

    def check(self) -> None:
        """Wait for the program; raise DatabaseError with its stderr unless it exited 0."""
        code = self.proc.wait()
        if code != 0:
            raise DatabaseError(
                f"{self.tool.name} failed (exit code {code}): "
                f"{self.stderr_text() or 'no error output'}",
                tool=self.tool.name,
                exit_code=code,
            )


class Stoppable(Protocol):
    def terminate(self) -> None: ...


class ProcessGroup:
    """The programs (and database statements) of one operation: when one part fails or the
    user interrupts, every other one is stopped at once instead of being waited for."""

    def __init__(self) -> None:
        self._running: set[Stoppable] = set()
        self._lock = threading.Lock()
        self._stopped = False

    def add(self, process: Stoppable) -> None:
        with self._lock:
            self._running.add(process)
            stopped = self._stopped
        if stopped:
            process.terminate()

    def discard(self, process: Stoppable) -> None:
        with self._lock:
            self._running.discard(process)

    def terminate(self) -> None:
        with self._lock:
            self._stopped = True
            running = list(self._running)
        for process in running:
            process.terminate()


def run_parallel(
    items: Iterable[T],
    work: Callable[[T], R],
    jobs: int,
    group: ProcessGroup,
    alongside: Callable[[], A] | None = None,
) -> tuple[list[R], A | None]:
    """Run ``work`` over ``items``, ``jobs`` at a time, while the calling thread runs
    ``alongside``. ``items`` may be a generator: each item starts as soon as it is produced.
    The first failure (or Ctrl-C, or an error producing the items) stops every program of
    ``group`` and is raised; results come back in the order of ``items``."""
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="warroom") as pool:
        futures: list[Future[R]] = []
        try:
            futures.extend(pool.submit(work, item) for item in items)
            extra = alongside() if alongside is not None else None
            for future in as_completed(futures):
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            group.terminate()
            raise
    return [future.result() for future in futures], extra
