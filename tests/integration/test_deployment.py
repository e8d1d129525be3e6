"""Deployment checkpoints: every built-in check for real reasons, the pipeline, rollback."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from warroom.config import Settings
from warroom.config.deployment import DeploymentConfig
from warroom.deployment.checks import Check, CheckContext
from warroom.deployment.junit import junit_xml
from warroom.deployment.runner import run_checks
from warroom.deployment.service import DeploymentService
from warroom.errors import ConflictError
from warroom.locks import hold_lock
from warroom.services import Services, build_services

SECRET = "s3cr3t-value-never-shown"


def _service(
    tmp_path: Path,
    config: dict[str, Any],
    database_url: str | None = None,
    environ: dict[str, str] | None = None,
    clock: Any = None,
) -> tuple[Services, DeploymentService]:
    for name in ("backups", "checkpoints"):
        (tmp_path / name).mkdir(exist_ok=True)
    settings = Settings(
        backup_dir=tmp_path / "backups",
        checkpoint_dir=tmp_path / "checkpoints",
        catalog_url=f"sqlite:///{tmp_path}/catalog.db",
        database_url=database_url,
        deployment=DeploymentConfig.model_validate(config),
    )
    services = build_services(settings)
    kwargs = {"clock": clock} if clock else {}
    service = DeploymentService(
        settings,
        services.catalog,
        services.backups,
        lock_dir=tmp_path / "locks",
        workdir=tmp_path,
        environ={"PATH": os.environ["PATH"], **(environ or {})},
        **kwargs,
    )
    return services, service


def _results(service: DeploymentService) -> dict[str, tuple[str, str]]:
    report = service.validate()
    return {r.name: (r.status, r.message) for r in report.results}


NO_DB = {
    "database": {"enabled": False},
    "backups": {"enabled": False},
    "env": {"required": []},
    "storage": {"min_free_mb": 1},
}


def test_environment_checks_never_show_values(tmp_path: Path) -> None:
    config = {
        **NO_DB,
        "env": {
            "required": ["SECRET_KEY", "MISSING"],
            "patterns": {"SECRET_KEY": "^https://", "SENTRY_DSN": "^https://"},
        },
    }
    services, service = _service(tmp_path, config, environ={"SECRET_KEY": SECRET})
    with services:
        results = _results(service)
        assert results["env:MISSING"][0] == "failed" and "not set" in results["env:MISSING"][1]
        assert results["env:SECRET_KEY"][0] == "failed"
        assert "does not match" in results["env:SECRET_KEY"][1]
        assert results["env:SENTRY_DSN"][0] == "skipped"  # optional and unset
        stored = str([r.details for r in services.catalog.list_checkpoints("deployment")])
        assert SECRET not in stored and SECRET not in str(results)


def test_configuration_file_checks(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text("a = 1\n")
    (tmp_path / "bad.json").write_text('{"password": "' + SECRET + '",\n  oops}')
    (tmp_path / "bad.yaml").write_text("a: [1, 2\nb: " + SECRET + "\n")
    (tmp_path / ".env").write_text(f"TOKEN={SECRET}\nthis line is wrong\n")
    (tmp_path / "app.json").write_text('{"port": "eighty"}')
    (tmp_path / "app.schema.json").write_text(
        '{"type": "object", "properties": {"port": {"type": "integer"}}, "required": ["port"]}'
    )
    files = {
        "good.toml": {},
        "bad.json": {},
        "bad.yaml": {},
        ".env": {},
        "app.json": {"schema": "app.schema.json"},
        "missing.yaml": {},
    }
    services, service = _service(tmp_path, {**NO_DB, "files": files})
    with services:
        results = _results(service)
    assert results["file:good.toml"][0] == "passed"
    assert results["file:bad.json"] == ("failed", results["file:bad.json"][1])
    assert "line 2" in results["file:bad.json"][1]
    assert results["file:bad.yaml"][0] == "failed" and "line" in results["file:bad.yaml"][1]
    assert results["file:.env"][0] == "failed" and "line 2" in results["file:.env"][1]
    assert results["file:app.json"][0] == "failed" and "port" in results["file:app.json"][1]
    assert results["file:missing.yaml"][0] == "failed"
    assert SECRET not in str(results)


def test_dependency_checks(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        "# pinned\npytest>=1.0\nPyYAML>=6  # comment\nno-such-package-xyz==1.0\n"
        "pydantic==0.0.1\nnumpy>=1 ; python_version < '3'\n"
    )
    (tmp_path / "ok.lock").write_text(
        '[[package]]\nname = "pytest"\nversion = "' + _version("pytest") + '"\n'
    )
    config = {
        **NO_DB,
        "dependencies": {
            "requirements": "requirements.txt",
            "tools": {"git": "1.0", "no-such-tool-xyz": "1"},
        },
    }
    services, service = _service(tmp_path, config)
    with services:
        results = _results(service)
        message = results["dependencies:requirements.txt"][1]
        assert results["dependencies:requirements.txt"][0] == "failed"
        assert "2 of 4 requirements unmet" in message
        assert "no-such-package-xyz is not installed" in message
        assert "pydantic" in message and "does not satisfy" in message
        assert results["tool:git"][0] == "passed"
        assert results["tool:no-such-tool-xyz"][0] == "failed"
        assert results["tool:pg_dump"][0] == "skipped"  # no PostgreSQL DATABASE_URL
        config["dependencies"] = {"requirements": "ok.lock", "tools": {"git": "999"}}
    services, service = _service(tmp_path, config)
    with services:
        results = _results(service)
    assert results["dependencies:ok.lock"][0] == "passed"
    assert results["tool:git"][0] == "failed" and "older than 999" in results["tool:git"][1]


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def test_database_storage_and_backup_checks(tmp_path: Path, pg_db: str) -> None:
    config = {"env": {"required": []}, "storage": {"min_free_mb": 1}}
    services, service = _service(tmp_path, config, database_url=pg_db)
    with services:
        results = _results(service)
        assert results["database"][0] == "passed"
        assert results["tool:pg_dump"][0] == "passed"
        assert results["storage"][0] == "passed"
        assert results["backups"][0] == "failed"
        assert "there is no intact backup of" in results["backups"][1]
        services.backups.create(url=pg_db)
        assert _results(service)["backups"][0] == "passed"

    later = lambda: services.backups.clock() + timedelta(hours=30)  # noqa: E731
    services, stale = _service(
        tmp_path, {**config, "storage": {"min_free_mb": 10**9}}, database_url=pg_db, clock=later
    )
    with services:
        results = _results(stale)
    assert results["backups"][0] == "failed" and "30.0 h old" in results["backups"][1]
    assert results["storage"][0] == "failed" and "below" in results["storage"][1]

    services, down = _service(tmp_path, config, database_url="postgresql://app:pw@127.0.0.1:1/prod")
    with services:
        started = time.monotonic()
        results = _results(down)
    assert results["database"][0] == "failed" and "127.0.0.1" in results["database"][1]
    assert time.monotonic() - started < 15


def test_alembic_migrations_at_head(tmp_path: Path, pg_db: str) -> None:
    (tmp_path / "migrations" / "versions").mkdir(parents=True)
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    (tmp_path / "migrations" / "script.py.mako").write_text("")
    (tmp_path / "migrations" / "env.py").write_text("")
    (tmp_path / "migrations" / "versions" / "a1.py").write_text(
        'revision = "a1"\ndown_revision = None\nbranch_labels = None\ndepends_on = None\n'
    )
    config = {**NO_DB, "database": {"alembic_config": "alembic.ini"}}
    services, service = _service(tmp_path, config, database_url=pg_db)
    with services:
        result = _results(service)["database"]
        assert result[0] == "failed" and "alembic upgrade head" in result[1]
        with psycopg.connect(pg_db, autocommit=True) as conn:
            conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
            conn.execute("INSERT INTO alembic_version VALUES ('a1')")
        assert _results(service)["database"][0] == "passed"


def test_command_checks_and_hung_or_crashing_checks(tmp_path: Path) -> None:
    commands = [
        {"name": "ok", "command": "true"},
        {"name": "broken", "command": "false", "severity": "warning"},
        {"name": "slow", "command": "sleep 5", "timeout": 0.3},
    ]
    services, service = _service(tmp_path, {**NO_DB, "commands": commands})
    with services:
        report = service.validate()
    results = {r.name: r for r in report.results}
    assert results["command:ok"].status == "passed"
    assert results["command:broken"].status == "failed" and not results["command:broken"].blocking
    assert results["command:slow"].status == "failed" and "0.3 s" in results["command:slow"].message
    assert report.status == "failed" and [r.name for r in report.blocking] == ["command:slow"]

    def hang(ctx: CheckContext) -> Any:
        time.sleep(3)

    def crash(ctx: CheckContext) -> Any:
        raise RuntimeError("bug in a check")

    checks = [
        Check("hangs", "error", hang),
        Check("crashes", "error", crash),
        Check("fine", "error", lambda ctx: (True, "fine", {})),
    ]
    started = time.monotonic()
    ran = run_checks(checks, None, default_timeout=0.3)  # type: ignore[arg-type]
    assert time.monotonic() - started < 2
    assert [(r.name, r.status) for r in ran] == [
        ("hangs", "failed"),
        ("crashes", "failed"),
        ("fine", "passed"),
    ]
    assert "RuntimeError: bug in a check" in ran[1].message


def test_junit_report_parses_back(tmp_path: Path) -> None:
    commands = [
        {"name": "ok", "command": "true"},
        {"name": "bad", "command": "false"},
        {"name": "meh", "command": "false", "severity": "warning"},
    ]
    config = {**NO_DB, "commands": commands, "env": {"required": [], "patterns": {"OPTIONAL": "x"}}}
    services, service = _service(tmp_path, config)
    with services:
        report = service.validate(version="1.2.3")
    suite = ET.fromstring(junit_xml(report)).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("6", "1", "2")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert cases["command:bad"].find("failure") is not None
    assert cases["env:OPTIONAL"].find("skipped") is not None
    assert "WARNING" in (cases["command:meh"].findtext("system-out") or "")
    assert {p.get("name"): p.get("value") for p in suite.iter("property")}["version"] == "1.2.3"


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health() -> Iterator[tuple[str, type[_Health]]]:
    handler = type("Handler", (_Health,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/healthz", handler
    server.shutdown()
    server.server_close()


def _deploy_config(tmp_path: Path, health_url: str) -> dict[str, Any]:
    marker = tmp_path / "rolled-back-to"
    return {
        "env": {"required": []},
        "storage": {"min_free_mb": 1},
        "backups": {"enabled": False},
        "deploy": {
            "health_url": health_url,
            "health_timeout": 1,
            "health_interval": 0.2,
            "rollback_command": f"{sys.executable} -c \"import sys; open('{marker}', 'w')"
            f'.write(sys.argv[1])" {{previous_version}}',
            "restore_database": True,
        },
    }


def test_failed_deploy_command_is_rolled_back_with_the_database(
    tmp_path: Path, pg_db: str, health: tuple[str, type[_Health]]
) -> None:
    url, _ = health
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders AS SELECT generate_series(1, 100) AS id")
    services, service = _service(tmp_path, _deploy_config(tmp_path, url), database_url=pg_db)
    with services:
        first = service.deploy("1.0", ["true"])
        assert first.status == "succeeded", first.stages
        assert first.stages["tag"] == {"status": "passed", "tag": "deploy-1.0", "git": False}
        assert first.stages["backup"]["checkpoint"].startswith("pre-deploy-1.0-")

        # The 2.0 deploy command runs a bad migration, then fails.
        migrate = (
            f"{sys.executable} -c \"import psycopg; psycopg.connect('{pg_db}', "
            "autocommit=True).execute('DROP TABLE orders')\""
        )
        second = service.deploy("2.0", ["sh", "-c", f"{migrate} && exit 3"])
        assert second.status == "rolled_back", second.stages
        assert second.stages["deploy"]["exit_code"] == 3
        assert (tmp_path / "rolled-back-to").read_text() == "1.0"
        assert second.stages["restore_database"]["status"] == "passed"
        with psycopg.connect(pg_db) as conn:
            assert conn.execute("SELECT count(*) FROM orders").fetchone() == (100,)
        assert service.current_version() == "1.0"
        statuses = [(r.source, r.status) for r in services.catalog.list_checkpoints("deployment")]
        assert statuses == [("1.0", "succeeded"), ("2.0", "rolled_back")]


def test_failed_health_check_is_rolled_back_and_tag_made(
    tmp_path: Path, health: tuple[str, type[_Health]]
) -> None:
    url, handler = health
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(
        [
            "git",
            "-c",
            "user.email=t@x",
            "-c",
            "user.name=t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "init",
        ],
        cwd=tmp_path,
        check=True,
    )
    config = _deploy_config(tmp_path, url)
    config["deploy"]["restore_database"] = False
    services, service = _service(
        tmp_path,
        config,
        environ={
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@x",
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@x",
        },
    )
    with services:
        assert service.deploy("1.0", ["true"]).status == "succeeded"
        tags = subprocess.run(["git", "tag"], cwd=tmp_path, capture_output=True, text=True)
        assert tags.stdout.split() == ["deploy-1.0"]
        handler.status = 503
        report = service.deploy("1.1", ["true"])
        assert report.status == "rollback_failed"  # the health check fails after rollback too
        assert report.stages["health"]["last_error"] == "HTTP 503"
        assert (tmp_path / "rolled-back-to").read_text() == "1.0"
        handler.status = 200
        on_demand = service.rollback(to_version="1.0")
        assert on_demand.status == "rolled_back"
        with (
            hold_lock(tmp_path / "locks" / "deployment.lock", "test"),
            pytest.raises(ConflictError, match="a deploy or rollback is already running"),
        ):
            service.deploy("1.2", ["true"])


def test_validation_failure_stops_the_deploy(tmp_path: Path, health: Any) -> None:
    url, _ = health
    config = _deploy_config(tmp_path, url)
    config["env"] = {"required": ["NOT_SET_ANYWHERE"]}
    services, service = _service(tmp_path, config)
    with services:
        report = service.deploy("3.0", ["sh", "-c", f"touch {tmp_path}/deployed"])
    assert report.status == "failed" and "deploy" not in report.stages
    assert not (tmp_path / "deployed").exists()
