"""Point-in-time recovery: a physical base backup plus the archived WAL, replayed to a target.

``restore`` picks the newest base backup that ends before the target, checks its parts, lays it
out in an empty data directory, and writes the recovery settings: ``restore_command`` fetches
WAL through ``warroom wal fetch``, and ``recovery_target_*`` with ``recovery_target_action =
promote``. With ``start`` it starts the server and waits until recovery has reached the target
and the server is promoted (``recovery.signal`` disappears). A target outside the recoverable
window (from the end of the oldest base backup to the end of the archived WAL) is refused with
the window in the message.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import sys
import tarfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from warroom.codec import ChunkReader
from warroom.database import WalServer
from warroom.database.backups import BackupService, Progress
from warroom.database.manifest import Manifest
from warroom.database.pgtools import find_tools, run_tool
from warroom.errors import (
    ConfigurationError,
    DatabaseError,
    InputError,
    IntegrityError,
    NotFoundError,
)
from warroom.wal import WalArchive, format_lsn, parse_lsn, segment_lsn_range

__all__ = ["PointInTimeRecovery", "RecoveryReport", "RecoveryTarget", "extract_safely"]

PHYSICAL = "physical"
# A WAL segment of timeline 0, which no server writes: fetching it must say "not in the archive".
PROBE_SEGMENT = "000000000000000000000000"


@dataclass(frozen=True)
class RecoveryTarget:
    """What to recover to: a time, an LSN, a named restore point, or the latest WAL."""

    time: datetime | None = None
    lsn: str | None = None
    name: str | None = None

    @property
    def latest(self) -> bool:
        return self.time is None and self.lsn is None and self.name is None

    def describe(self) -> str:
        if self.time is not None:
            return f"time {self.time.isoformat()}"
        if self.lsn is not None:
            return f"LSN {self.lsn}"
        return f"restore point {self.name!r}" if self.name else "the latest archived WAL"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class RecoveryReport(TypedDict):
    """A recovery laid out: the base backup, the target in words, the data directory, and
    whether the server was ``started`` (then ``promoted`` too)."""

    base_backup: str
    target: str
    data_dir: str
    started: bool
    promoted: NotRequired[bool]


class PointInTimeRecovery:
    def __init__(self, backups: BackupService, archive: WalArchive) -> None:
        self.backups = backups
        self.archive = archive

    def _wal_command(self) -> str:
        """The shell command the server runs: the repository settings (BACKUP_DIR, replicas,
        the key file's path: never a key or a credential, which the server's environment or
        AWS profile must hold), then WARROOM_WAL_COMMAND (default: this Python with -m
        warroom; the server's OS user must be able to run it)."""
        settings = self.backups.settings
        variables = {
            "BACKUP_DIR": self.backups.storage.copies()[0].location,
            "WARROOM_REPLICAS": settings.replicas,
            "WARROOM_ENCRYPTION_KEY_FILE": str(settings.encryption_key_file or ""),
            "AWS_ENDPOINT_URL": os.environ.get("AWS_ENDPOINT_URL", ""),
        }
        runner = settings.wal_command or _default_runner()
        assignments = " ".join(f"{k}={_shell_quote(v)}" for k, v in variables.items() if v)
        return f"{assignments} {runner}"

    def archiving_settings(self) -> dict[str, str]:
        """The server settings that make PostgreSQL archive its WAL into this repository."""
        push = f"{self._wal_command()} wal push %p"
        return {
            "wal_level": "replica",
            "archive_mode": "on",
            "archive_command": push,
            "archive_timeout": "60",
        }

    def _restore_command(self) -> str:
        return f"{self._wal_command()} wal fetch %f %p"

    def apply_archiving_settings(self, url: str | None) -> None:
        """Check the WAL commands on the server (:meth:`check_wal_commands`), then ALTER SYSTEM
        the archiving settings; a server at wal_level logical keeps it (replica would break its
        logical replication)."""
        engine = self._wal_server(url)
        self.check_wal_commands(engine)
        settings = self.archiving_settings()
        if engine.setting("wal_level") == "logical":
            del settings["wal_level"]
        engine.apply_settings(settings)

    def check_wal_commands(self, engine: WalServer) -> None:
        """Run the WAL commands where the server runs them, as its OS user, or raise
        ConfigurationError. They run through the server itself (COPY FROM PROGRAM), not
        through runuser here: warroom may run on another host than PostgreSQL, and only the
        server's host, user and environment decide whether archive_command can run.

        The restore command runs exactly as recovery would run it, fetching a segment of
        timeline 0, which no server writes: it must answer "not in the archive". The archive
        command runs with ``wal check`` in place of ``wal push %p`` (same runner, same
        repository; pushing a real file would put it in the archive): it must store, read back
        and delete a probe object."""
        probes = [
            ("archive_command", _expand(f"{self._wal_command()} wal check"), 0, ""),
            (
                "restore_command",
                _expand(self._restore_command(), f=PROBE_SEGMENT, p="pg_wal/warroom-probe"),
                1,
                "is not in the archive",
            ),
        ]
        for setting, command, answer, saying in probes:
            code, output = engine.run_server_program(command)
            if code == answer and saying in output:
                continue
            hint = {126: " (not executable by that user)", 127: " (not found)"}.get(code, "")
            raise ConfigurationError(
                f"the {setting} would fail on the server of {engine.display}: run there as "
                f"the server's OS user, {command!r} exited {code}{hint}: "
                f"{output.strip()[-500:] or 'no output'}. That user must be able to run "
                "warroom and to reach BACKUP_DIR: set WARROOM_WAL_COMMAND to a command it can "
                "run (README: 'Which warroom the server runs'). Nothing was changed.",
                setting=setting,
                exit_code=code,
            )

    def create_restore_point(self, name: str, url: str | None) -> dict[str, Any]:
        point = self._wal_server(url).create_restore_point(name)
        self.archive.record_restore_point(name, point)
        return {"name": name, **point}

    def _wal_server(self, url: str | None) -> WalServer:
        server = self.backups.engine_for(url).wal_server()
        if server is None:
            raise InputError("WAL archiving and restore points are for PostgreSQL databases")
        return server

    def physical_backups(self) -> list[Manifest]:
        """Physical base backups, oldest first (read from their manifests)."""
        manifests = [
            self.backups.manifest(record.name)
            for record in self.backups.list_backups()
            if record.details.get("kind") == PHYSICAL
        ]
        return sorted(manifests, key=lambda manifest: manifest.completed_at)

    def window(self) -> dict[str, Any] | None:
        """The recoverable window: from the end of the oldest base backup to the end of the
        newest archived WAL segment (None without a base backup)."""
        backups = self.physical_backups()
        if not backups:
            return None
        segments = self.archive.segments()
        latest_time = max([backups[-1].completed_at, *(s.archived_at for s in segments)])
        end_lsn = max(
            [
                parse_lsn(backups[-1].database["end_lsn"]),
                *(segment_lsn_range(s.name)[1] for s in segments),
            ]
        )
        return {
            "earliest": backups[0].completed_at.isoformat(),
            "latest": latest_time.isoformat(),
            "earliest_lsn": backups[0].database["end_lsn"],
            "latest_lsn": format_lsn(end_lsn),
            "base_backups": [m.name for m in backups],
            "archived_segments": len(segments),
        }

    def _choose(self, target: RecoveryTarget) -> tuple[Manifest, RecoveryTarget]:
        backups = self.physical_backups()
        if not backups:
            raise NotFoundError(
                "there is no physical base backup: take one with warroom create database --physical"
            )
        window = self.window()
        assert window is not None
        span = (
            f"the recoverable window is {window['earliest']} to {window['latest']} "
            f"(LSN {window['earliest_lsn']} to {window['latest_lsn']})"
        )
        if target.name is not None:
            point = self.archive.restore_point(target.name)
            lsn = point["lsn"]
            candidates = [m for m in backups if parse_lsn(m.database["end_lsn"]) <= parse_lsn(lsn)]
        elif target.lsn is not None:
            lsn = target.lsn
            if not (
                parse_lsn(window["earliest_lsn"])
                <= parse_lsn(lsn)
                <= parse_lsn(window["latest_lsn"])
            ):
                raise InputError(f"LSN {lsn} is outside what can be recovered: {span}")
            candidates = [m for m in backups if parse_lsn(m.database["end_lsn"]) <= parse_lsn(lsn)]
        elif target.time is not None:
            earliest, latest = backups[0].completed_at, datetime.fromisoformat(window["latest"])
            if not earliest <= target.time <= latest:
                raise InputError(
                    f"{target.time.isoformat()} is outside what can be recovered: {span}"
                )
            candidates = [m for m in backups if m.completed_at <= target.time]
        else:
            candidates = backups
        if not candidates:
            raise InputError(f"{target.describe()} is before the oldest base backup: {span}")
        return candidates[-1], target

    def restore(
        self,
        target: RecoveryTarget,
        data_dir: Path,
        port: int | None = None,
        start: bool = False,
        progress: Progress | None = None,
        timeout: float = 600.0,
    ) -> RecoveryReport:
        """Lay out the recovery of ``target`` in ``data_dir`` (new or empty); with ``start``,
        run it until the server is promoted."""
        data_dir = data_dir.absolute()
        if data_dir.exists() and not data_dir.is_dir():
            raise InputError(f"--data-dir {data_dir} is not a directory; give a new directory")
        if data_dir.exists() and any(data_dir.iterdir()):
            raise InputError(f"--data-dir {data_dir} is not empty; give a new directory")
        manifest, target = self._choose(target)
        progress = progress or Progress()
        source = self.backups.check_stored(manifest)
        progress.start(f"laying out {manifest.name} in {data_dir}", manifest.size_original)
        data_dir.mkdir(parents=True, exist_ok=True)
        reader = ChunkReader(self.backups.read_part(manifest, "base.tar", progress, source))
        with tarfile.open(fileobj=reader, mode="r|") as archive:  # type: ignore[call-overload]
            extract_safely(archive, data_dir, manifest.name)
        self._write_recovery_settings(data_dir, target, port)
        data_dir.chmod(0o700)
        owner = _server_user(data_dir)
        report: RecoveryReport = {
            "base_backup": manifest.name,
            "target": target.describe(),
            "data_dir": str(data_dir),
            "started": False,
        }
        if start:
            self._start_and_wait(data_dir, owner, timeout)
            report["started"] = True
            report["promoted"] = True
        return report

    def _write_recovery_settings(
        self, data_dir: Path, target: RecoveryTarget, port: int | None
    ) -> None:
        settings = {
            "restore_command": self._restore_command(),
            "recovery_target_action": "promote",
            "recovery_target_timeline": "latest",
            # The recovered copy must not archive into the repository it recovers from.
            "archive_mode": "off",
        }
        if target.time is not None:
            settings["recovery_target_time"] = target.time.isoformat()
        elif target.lsn is not None:
            settings["recovery_target_lsn"] = target.lsn
        elif target.name is not None:
            settings["recovery_target_name"] = target.name
        lines = [f"{key} = {_quote(value)}" for key, value in settings.items()]
        if port is not None:
            lines.append(f"port = {int(port)}")
        if not (data_dir / "postgresql.conf").exists():
            (data_dir / "postgresql.conf").write_text(
                "listen_addresses = 'localhost'\n"
                f"unix_socket_directories = {_quote(str(data_dir))}\n"
            )
        if not (data_dir / "pg_hba.conf").exists():
            (data_dir / "pg_hba.conf").write_text(
                "local all all peer\nhost all all 127.0.0.1/32 scram-sha-256\n"
            )
        with open(data_dir / "postgresql.auto.conf", "a") as conf:
            conf.write("\n# written by warroom restore database (point-in-time recovery)\n")
            conf.write("\n".join(lines) + "\n")
        (data_dir / "recovery.signal").touch()
        for leftover in ("postmaster.pid", "postmaster.opts", "standby.signal"):
            (data_dir / leftover).unlink(missing_ok=True)

    def _start_and_wait(self, data_dir: Path, owner: str | None, timeout: float) -> None:
        """Start the server and wait until recovery is over and it runs as a primary (the
        control file says "in production"); fail with its log if it stops first."""
        major = int((data_dir / "PG_VERSION").read_text().split(".")[0])
        tools = find_tools(
            major, self.backups.settings.pg_bin_dir, "pg_ctl", "pg_controldata", exact=True
        )
        log = data_dir / "recovery.log"
        start = ["-D", str(data_dir), "-l", str(log), "-w", "-t", str(int(timeout)), "start"]
        done = run_tool(tools["pg_ctl"], start, as_user=owner)
        deadline = time.monotonic() + timeout
        while True:
            state = run_tool(tools["pg_controldata"], ["-D", str(data_dir)]).stdout
            running = (data_dir / "postmaster.pid").exists()
            if running and re.search(r"cluster state:\s+in production", state):
                return
            if done.returncode != 0 or not running or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
                raise DatabaseError(
                    "the recovered server did not reach the target and promote; its log "
                    f"ends with:\n{tail or done.stderr}",
                    data_dir=str(data_dir),
                )
            time.sleep(0.2)


def extract_safely(archive: tarfile.TarFile, destination: Path, backup: str) -> None:
    """Extract every member of ``archive`` under ``destination`` (an existing directory), or
    raise IntegrityError naming the first member that could reach outside it or is not a file,
    directory or link: an absolute path, ``..``, a link pointing outside, a device. Through
    tarfile's ``data`` filter where this Python has it (3.11.4 and later); before that, through
    the same checks made here, member by member."""
    if hasattr(tarfile, "data_filter"):
        try:
            archive.extractall(destination, filter="data")
        except tarfile.FilterError as exc:
            raise IntegrityError(f"base backup {backup} holds an unsafe member: {exc}") from exc
        return
    root = destination.resolve()
    for member in archive:
        problem = _unsafe(member, root)
        if problem:
            raise IntegrityError(
                f"base backup {backup} holds an unsafe member {member.name!r}: {problem}"
            )
        member.mode &= 0o755  # no setuid, setgid or sticky bit, not group/other-writable
        archive.extract(member, root)


def _unsafe(member: tarfile.TarInfo, root: Path) -> str | None:
    """Why extracting ``member`` under ``root`` (resolved) is unsafe, or None."""
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        return "not a regular file, directory or link"
    if os.path.isabs(member.name):
        return "an absolute path"
    path = (root / member.name).resolve()  # follows links extracted before it
    if not path.is_relative_to(root):
        return "outside the destination"
    if member.issym() or member.islnk():
        if os.path.isabs(member.linkname):
            return "a link to an absolute path"
        base = path.parent if member.issym() else root
        if not (base / member.linkname).resolve().is_relative_to(root):
            return "a link pointing outside the destination"
    return None


def _default_runner() -> str:
    """The ``warroom`` script beside this interpreter when there is one (it starts faster than
    ``python -m warroom``), else ``python -m warroom``."""
    script = Path(sys.executable).parent / "warroom"
    if script.is_file() and os.access(script, os.X_OK):
        return _shell_quote(str(script))
    return f"{_shell_quote(sys.executable)} -m warroom"


def _expand(command: str, **values: str) -> str:
    """``command`` as PostgreSQL runs it: ``%f``, ``%p`` replaced by ``values`` (shell-quoted),
    ``%%`` by ``%``."""

    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        return "%" if key == "%" else shlex.quote(values[key]) if key in values else match.group(0)

    return re.sub(r"%(.)", one, command)


def _shell_quote(value: str) -> str:
    """Quoted for the shell, with % doubled: PostgreSQL expands %p and %f in these commands."""
    return shlex.quote(value).replace("%", "%%")


def _server_user(data_dir: Path) -> str | None:
    """PostgreSQL refuses to run as root: when we are root, hand the directory to the
    ``postgres`` user and run the server as it."""
    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise DatabaseError(
            "running as root, and there is no postgres user to run the "
            "recovered server; run warroom as the database's OS user"
        ) from exc
    for root, dirs, files in os.walk(data_dir):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), user.pw_uid, user.pw_gid)
    os.chown(data_dir, user.pw_uid, user.pw_gid)
    return "postgres"
