"""Deployment readiness checks.

A :class:`Check` has a name and a severity, and ``run(ctx)`` returns a :class:`CheckResult`.
A failed result's message says how to fix the problem. Checks never put a secret in a result:
an environment variable is reported by presence and pattern only, never by value; a file is
reported by where it fails to parse, never by its content.

:func:`build_checks` turns the ``[deployment]`` configuration into the list of checks.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from warroom.catalog import Catalog
from warroom.catalog.store import sqlalchemy_url
from warroom.config import Settings
from warroom.config.deployment import CommandConfig, DeploymentConfig, FileConfig
from warroom.database import Source, open_database
from warroom.errors import WarroomError
from warroom.redact import redact_url
from warroom.repository.locks import probe_locks
from warroom.repository.objects import probe_repository
from warroom.sources import group_by_source

__all__ = ["Check", "CheckContext", "CheckResult", "build_checks"]

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
_VERSION_TOKEN = re.compile(r"(\d+(?:\.\d+)+|\d+)")


@dataclass
class CheckResult:
    name: str
    severity: str
    status: str
    message: str
    duration_seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def blocking(self) -> bool:
        """A failure that stops a deployment (warnings never do)."""
        return self.status == FAILED and self.severity == "error"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "severity": self.severity,
            "status": self.status,
            "message": self.message,
            "duration_seconds": round(self.duration_seconds, 3),
            "details": self.details,
        }


@dataclass
class CheckContext:
    """What checks may look at: settings, the catalog, the environment, the clock."""

    settings: Settings
    catalog: Catalog
    environ: dict[str, str]
    now: datetime
    workdir: Path
    database_source: Callable[[], Source | None] = lambda: None  # DATABASE_URL's


@dataclass
class Check:
    """One check: ``probe(ctx)`` returns (passed, message, details) or raises."""

    name: str
    severity: str
    probe: Callable[[CheckContext], tuple[bool | None, str, dict[str, Any]]]
    timeout: float | None = None

    def run(self, ctx: CheckContext) -> CheckResult:
        passed, message, details = self.probe(ctx)
        status = SKIPPED if passed is None else PASSED if passed else FAILED
        return CheckResult(self.name, self.severity, status, message, details=details)


Outcome = tuple[bool | None, str, dict[str, Any]]


# -- environment variables ------------------------------------------------------------------


def _env_check(variable: str, pattern: str | None, required: bool, severity: str) -> Check:
    def probe(ctx: CheckContext) -> Outcome:
        value = ctx.environ.get(variable)
        if not value:
            if required:
                return False, f"{variable} is not set; set it in the deployment environment", {}
            return None, f"{variable} is not set (optional)", {}
        if pattern and not re.search(pattern, value):
            return (
                False,
                f"{variable} is set but does not match the pattern {pattern!r}; fix its value",
                {"present": True, "pattern": pattern},
            )
        return (
            True,
            f"{variable} is set" + (f" and matches {pattern!r}" if pattern else ""),
            {"present": True},
        )

    return Check(f"env:{variable}", severity, probe)


# -- configuration files --------------------------------------------------------------------


def _parse(path: Path, fmt: str) -> Any:
    text = path.read_text()
    if fmt == "json":
        return json.loads(text)
    if fmt == "toml":
        return tomllib.loads(text)
    if fmt == "yaml":
        import yaml

        return yaml.safe_load(text)
    from dotenv import dotenv_values

    lines = [
        (number, line)
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for number, line in lines:
        if "=" not in line:
            raise ValueError(f"line {number} is not KEY=VALUE")
    return dict(dotenv_values(path))


def _parse_error_position(exc: Exception) -> str:
    """Where a file fails to parse, without quoting its content (it may hold secrets)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
    if isinstance(exc, tomllib.TOMLDecodeError):
        return str(exc).split("(at", 1)[-1].strip(" )") or "invalid TOML"
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {getattr(exc, 'problem', '')}"
    return str(exc) if isinstance(exc, ValueError) and "line" in str(exc) else type(exc).__name__


def _file_check(name: str, config: FileConfig) -> Check:
    formats = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".env": "dotenv"}

    def probe(ctx: CheckContext) -> Outcome:
        path = ctx.workdir / name
        if not path.is_file():
            return False, f"{name} does not exist; create it or fix its path in warroom.toml", {}
        if not os.access(path, os.R_OK):
            return False, f"{name} is not readable by this user; fix its permissions", {}
        fmt = (
            config.format or formats.get(path.suffix) or ("dotenv" if path.name == ".env" else None)
        )
        if fmt is None:
            return True, f"{name} exists and is readable", {}
        try:
            document = _parse(path, fmt)
        except Exception as exc:  # noqa: BLE001 - every parser's own error type
            return (
                False,
                f"{name} is not valid {fmt}: {_parse_error_position(exc)}",
                {"format": fmt},
            )
        if config.schema_:
            import jsonschema

            schema = json.loads((ctx.workdir / config.schema_).read_text())
            errors = sorted(
                jsonschema.Draft202012Validator(schema).iter_errors(document),
                key=lambda error: list(error.absolute_path),
            )
            if errors:
                where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
                return (
                    False,
                    (
                        f"{name} does not match {config.schema_}: at {where}: "
                        f"{errors[0].validator} {errors[0].validator_value!r} failed"
                    ),
                    {"format": fmt, "errors": len(errors)},
                )
        return (
            True,
            f"{name} is valid {fmt}" + (" and matches its schema" if config.schema_ else ""),
            {"format": fmt},
        )

    return Check(f"file:{name}", config.severity, probe)


# -- dependencies ---------------------------------------------------------------------------


def _installed_packages(python: str | None) -> dict[str, str]:
    if python is None:
        return {
            canonicalize_name(dist.metadata["Name"]): dist.version
            for dist in metadata.distributions()
            if dist.metadata["Name"]
        }
    script = (
        "import json, importlib.metadata as m; print(json.dumps("
        "{d.metadata['Name']: d.version for d in m.distributions() if d.metadata['Name']}))"
    )
    out = subprocess.run(
        [python, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return {canonicalize_name(k): v for k, v in json.loads(out.stdout).items()}


def _wanted_packages(path: Path) -> list[Requirement]:
    """Requirements from a requirements file or a lock file (``[[package]]`` name/version)."""
    if path.suffix == ".lock":
        lock = tomllib.loads(path.read_text())
        return [
            Requirement(f"{package['name']}=={package['version']}")
            for package in lock.get("package", [])
            if "version" in package
        ]
    wanted = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            wanted.append(Requirement(line))
        except InvalidRequirement as exc:
            raise ValueError(f"{path.name} line {number}: {exc}") from exc
    return wanted


def _packages_check(requirements: str, python: str | None, severity: str) -> Check:
    def probe(ctx: CheckContext) -> Outcome:
        path = ctx.workdir / requirements
        if not path.is_file():
            return False, f"{requirements} does not exist; fix [deployment.dependencies]", {}
        installed = _installed_packages(python)
        problems = []
        wanted = [r for r in _wanted_packages(path) if r.marker is None or r.marker.evaluate()]
        for requirement in wanted:
            version = installed.get(canonicalize_name(requirement.name))
            if version is None:
                problems.append(f"{requirement.name} is not installed")
            elif requirement.specifier and not requirement.specifier.contains(
                version, prereleases=True
            ):
                problems.append(f"{requirement.name} {version} does not satisfy {requirement}")
        if problems:
            return (
                False,
                (
                    f"{len(problems)} of {len(wanted)} requirements unmet: "
                    f"{'; '.join(problems[:10])}; run pip install -r {requirements}"
                ),
                {"unmet": problems},
            )
        return True, f"all {len(wanted)} requirements of {requirements} are satisfied", {}

    return Check(f"dependencies:{requirements}", severity, probe)


def _tool_version(tool: str) -> Version | None:
    path = shutil.which(tool)
    if path is None:
        return None
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    match = _VERSION_TOKEN.search(out.stdout + out.stderr)
    try:
        return Version(match.group(1)) if match else None
    except InvalidVersion:
        return None


def _tool_check(tool: str, minimum: str, severity: str) -> Check:
    def probe(ctx: CheckContext) -> Outcome:
        if shutil.which(tool) is None:
            return False, f"{tool} is not installed (not on PATH); install it", {}
        found = _tool_version(tool)
        if found is None:
            return False, f"cannot tell the version of {tool}; check `{tool} --version`", {}
        if found < Version(minimum):
            return (
                False,
                f"{tool} {found} is older than {minimum}; upgrade it",
                {"version": str(found)},
            )
        return True, f"{tool} {found} (at least {minimum})", {"version": str(found)}

    return Check(f"tool:{tool}", severity, probe)


def _pg_dump_check(severity: str) -> Check:
    def probe(ctx: CheckContext) -> Outcome:
        url = ctx.settings.database_url
        if not url or not url.startswith(("postgresql:", "postgres:")):
            return None, "no PostgreSQL DATABASE_URL: pg_dump is not needed", {}
        from warroom.database.postgres import PostgresEngine

        engine = PostgresEngine(
            url, pg_bin_dir=ctx.settings.pg_bin_dir, connect_timeout=ctx.settings.connect_timeout
        )
        tool = engine.client_tool("pg_dump")
        return True, f"{tool.path} {tool.version} can back up the server", {"version": tool.version}

    return Check("tool:pg_dump", severity, probe)


# -- database, storage, backups -------------------------------------------------------------


def _database_check(config: DeploymentConfig) -> Check:
    settings = config.database

    def probe(ctx: CheckContext) -> Outcome:
        url = ctx.settings.database_url
        if not url:
            return None, "DATABASE_URL is not set: no database to check", {}
        timeout = max(1, int(settings.timeout))
        engine = open_database(url, pg_bin_dir=ctx.settings.pg_bin_dir, connect_timeout=timeout)
        engine.ping()
        if settings.alembic_config is None:
            return True, f"{engine.display} is reachable", {}
        current, heads = _alembic_revisions(ctx.workdir / settings.alembic_config, url)
        if set(current) != set(heads):
            return (
                False,
                (
                    f"database migrations are not at head: the database is at "
                    f"{', '.join(current) or 'no revision'}, the code's head is "
                    f"{', '.join(heads)}; run `alembic upgrade head`"
                ),
                {"current": current, "heads": heads},
            )
        return True, f"{engine.display} is reachable and migrations are at head", {"heads": heads}

    return Check("database", settings.severity, probe)


def _alembic_revisions(ini: Path, url: str) -> tuple[list[str], list[str]]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, text

    config = Config(str(ini))
    location = config.get_main_option("script_location") or "alembic"
    if not Path(location).is_absolute():
        config.set_main_option("script_location", str(ini.parent / location))
    heads = sorted(ScriptDirectory.from_config(config).get_heads())
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            try:
                current = sorted(
                    row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))
                )
            except Exception:  # noqa: BLE001 - no alembic_version table yet
                current = []
    finally:
        engine.dispose()
    return current, heads


def _object_store_problem(label: str, location: str, ctx: CheckContext) -> str | None:
    """Why the object store at ``location`` cannot be used as configured, or None: reached,
    written (a probe object, deleted at once) and encrypted exactly when a key is set; for
    BACKUP_DIR, whose locks live there, a lock held keeps a second taker out."""
    try:
        probe_repository(location, ctx.settings.master_keys())
        if label == "BACKUP_DIR":
            probe_locks(location)
    except WarroomError as exc:
        return f"{label} {location}: {exc.message}"
    return None


def _storage_check(config: DeploymentConfig) -> Check:
    minimum = config.storage.min_free_mb

    def probe(ctx: CheckContext) -> Outcome:
        problems, free = [], {}
        for label, directory in (
            ("CHECKPOINT_DIR", ctx.settings.checkpoint_dir),
            ("BACKUP_DIR", ctx.settings.backup_dir),
            *(("WARROOM_REPLICAS", r.location) for r in ctx.settings.replica_settings()),
        ):
            if isinstance(directory, str) and "://" in directory:
                problem = _object_store_problem(label, directory, ctx)
                if problem:
                    problems.append(problem)
                continue
            path = Path(directory)
            if not path.is_dir():
                problems.append(f"{label} {path} does not exist (create it)")
                continue
            try:
                with tempfile.NamedTemporaryFile(dir=path, prefix=".warroom-write-test-"):
                    pass
            except OSError as exc:
                problems.append(f"{label} {path} is not writable ({exc.strerror})")
                continue
            free_mb = shutil.disk_usage(path).free // (1 << 20)
            free[label] = free_mb
            if free_mb < minimum:
                problems.append(
                    f"{label} {path} has {free_mb} MiB free, below {minimum} MiB "
                    "(free space or lower [deployment.storage] min_free_mb)"
                )
        if problems:
            return False, "; ".join(problems), {"free_mb": free}
        return (
            True,
            f"CHECKPOINT_DIR, BACKUP_DIR and its replicas writable, at least {minimum} MiB "
            "free on each directory",
            {"free_mb": free},
        )

    return Check("storage", config.storage.severity, probe)


def _backup_check(config: DeploymentConfig) -> Check:
    max_age = timedelta(hours=config.backups.max_age_hours)

    def probe(ctx: CheckContext) -> Outcome:
        if not ctx.settings.database_url:
            return None, "DATABASE_URL is not set: no backups expected", {}
        configured = ctx.database_source()
        groups = group_by_source(ctx.catalog.list_checkpoints("database"), configured, ctx.now)
        newest = groups[0].newest_intact if groups and groups[0].configured else None
        if newest is None or configured is None:
            label = redact_url(ctx.settings.database_url)
            return False, f"there is no intact backup of {label}; run `warroom create database`", {}
        age = ctx.now - newest.created_at
        details = {
            "newest": newest.name,
            "status": newest.status,
            "source": configured.id,
            "age_hours": round(age.total_seconds() / 3600, 2),
        }
        if age > max_age:
            return (
                False,
                (
                    f"the newest intact backup of {configured.label}, {newest.name}, is "
                    f"{details['age_hours']} h old (limit {config.backups.max_age_hours:g} h); "
                    "run `warroom create database`"
                ),
                details,
            )
        return (
            True,
            f"the newest intact backup of {configured.label}, {newest.name} ({newest.status}), "
            f"is {details['age_hours']} h old",
            details,
        )

    return Check("backups", config.backups.severity, probe)


def _command_check(config: CommandConfig) -> Check:
    def probe(ctx: CheckContext) -> Outcome:
        try:
            done = subprocess.run(
                shlex.split(config.command),
                cwd=ctx.workdir,
                capture_output=True,
                timeout=config.timeout,
                env=ctx.environ,
            )
        except FileNotFoundError:
            return False, f"{shlex.split(config.command)[0]!r} was not found; install it", {}
        except subprocess.TimeoutExpired:
            return False, f"`{config.command}` did not finish within {config.timeout:g} s", {}
        if done.returncode != 0:
            return (
                False,
                (f"`{config.command}` exited with {done.returncode}; run it to see why"),
                {"exit_code": done.returncode},
            )
        return True, f"`{config.command}` passed", {"exit_code": 0}

    return Check(f"command:{config.name}", config.severity, probe, timeout=config.timeout + 5)


def build_checks(config: DeploymentConfig) -> list[Check]:
    """Every check the configuration asks for, built-in ones first."""
    checks = [
        _env_check(variable, config.env.patterns.get(variable), True, config.env.severity)
        for variable in config.env.required
    ]
    checks += [
        _env_check(variable, pattern, False, config.env.severity)
        for variable, pattern in config.env.patterns.items()
        if variable not in config.env.required
    ]
    checks += [_file_check(name, file_config) for name, file_config in config.files.items()]
    deps = config.dependencies
    if deps.requirements:
        checks.append(_packages_check(deps.requirements, deps.python, deps.severity))
    checks.append(_pg_dump_check(deps.severity))
    checks += [_tool_check(tool, minimum, deps.severity) for tool, minimum in deps.tools.items()]
    if config.database.enabled:
        checks.append(_database_check(config))
    checks.append(_storage_check(config))
    if config.backups.enabled:
        checks.append(_backup_check(config))
    checks += [_command_check(command) for command in config.commands]
    return checks
