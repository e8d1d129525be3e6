"""PostgreSQL's client programs behind a class, as Barman does it.

:func:`find_tools` finds ``pg_dump`` and ``pg_restore`` no older than the server (in
``WARROOM_PG_BIN_DIR``, else the newest ``/usr/lib/postgresql/*/bin``, else ``PATH``);
:class:`PgProcess` runs one of them and raises :class:`~warroom.errors.DatabaseError` with the
exit code and the tool's stderr (secrets removed) when it fails.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from warroom.errors import ConfigurationError, DatabaseError
from warroom.redact import redact_text

__all__ = ["PgProcess", "PgTool", "find_tools"]

READ_CHUNK = 1 << 20
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


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
    version = match.group(1) + (f".{match.group(2)}" if match.group(2) else "")
    return PgTool(Path(path).name, path, version)


def _candidates(name: str, bin_dir: Path | None) -> list[str]:
    if bin_dir is not None:
        return [str(bin_dir / name)]
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(re.sub(r"\D", "", Path(p).parent.parent.name) or 0),
        reverse=True,
    )
    on_path = shutil.which(name)
    return found + ([on_path] if on_path else [])


def find_tools(server_major: int, bin_dir: Path | None, *names: str) -> dict[str, PgTool]:
    """Each named tool at a version no older than the server's major version."""
    tools: dict[str, PgTool] = {}
    for name in names:
        seen = [tool for path in _candidates(name, bin_dir) if (tool := _probe(path))]
        usable = [tool for tool in seen if tool.major >= server_major]
        if usable:
            tools[name] = usable[0]
            continue
        where = f"in {bin_dir}" if bin_dir else "in /usr/lib/postgresql/*/bin or on PATH"
        if seen:
            found = ", ".join(f"{t.path} ({t.version})" for t in seen)
            problem = f"{name} is older than the server (PostgreSQL {server_major}): found {found}"
        else:
            problem = f"{name} was not found {where}"
        raise ConfigurationError(
            f"{problem}; install the PostgreSQL {server_major} client tools "
            f"(e.g. apt-get install postgresql-client-{server_major}) or set WARROOM_PG_BIN_DIR "
            "to their directory",
            tool=name,
        )
    return tools


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
    ) -> None:
        self.tool = tool
        self._secrets = secrets
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

    def __enter__(self) -> PgProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self._stderr.close()

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
