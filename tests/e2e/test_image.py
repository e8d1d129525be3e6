"""What the container image does, without a Docker engine: the Dockerfile is linted (hadolint),
then its command runs as it would in the image: the built wheel installed in a fresh virtualenv
(the image), the Dockerfile's environment, a platform-assigned PORT, an unprivileged user, and
only the two volume directories writable. Then everything but the volumes is deleted (a
redeploy), the command starts again, and tokens, workflows, backups and deployment history are
all still there."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import PG_URL, create_pg_database, drop_pg_database, pg_url
from tests.pgcluster import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
USER, GROUP = "nobody", "nogroup"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    logical: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        name, arguments = (pending + stripped).split(None, 1)
        logical.append((name.upper(), arguments))
        pending = ""
    return logical


@dataclass
class Image:
    """The Dockerfile's final stage as this test reads it."""

    env: dict[str, str]
    command: list[str]
    healthcheck: list[str]
    volumes: list[str]
    workdir: str

    @classmethod
    def read(cls, dockerfile: Path, build_args: dict[str, str]) -> Image:
        final: list[tuple[str, str]] = []
        for instruction in instructions(dockerfile):
            final = [] if instruction[0] == "FROM" else [*final, instruction]
        args, env = dict(build_args), {}
        command: list[str] = []
        healthcheck: list[str] = []
        volumes: list[str] = []
        workdir = "/"
        for name, value in final:
            if name == "ARG":
                key, _, default = value.partition("=")
                args.setdefault(key, default)
            elif name == "ENV":
                for pair in shlex.split(value):
                    key, _, raw = pair.partition("=")
                    for arg, arg_value in args.items():
                        raw = raw.replace(f"${{{arg}}}", arg_value)
                    env[key] = raw
            elif name == "CMD":
                command = json.loads(value)
            elif name == "HEALTHCHECK":
                healthcheck = json.loads(value.split(" CMD ", 1)[1])
            elif name == "VOLUME":
                volumes = json.loads(value)
            elif name == "WORKDIR":
                workdir = value
        return cls(env, command, healthcheck, volumes, workdir)


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_keeps_the_seed_contract() -> None:
    image = Image.read(DOCKERFILE, {})
    assert image.volumes == ["/app/checkpoints", "/app/backups"]
    assert image.env["CHECKPOINT_DIR"] == "/app/checkpoints"
    assert image.env["BACKUP_DIR"] == "/app/backups"
    assert image.env["CHECKPOINT_RETENTION_DAYS"] == "7"
    assert image.env["ENABLE_AUTO_CHECKPOINTS"] == "true"
    assert image.env["DATABASE_CHECKPOINT_SCHEDULE"] == "0 3 * * *"
    assert image.command == ["warroom", "serve"] and "/healthz" in " ".join(image.healthcheck)
    text = DOCKERFILE.read_text()
    assert "ARG PG_MAJOR=" in text and "postgresql-client-${PG_MAJOR}" in text
    assert "-slim" in text and "\nUSER 10001:10001\n" in text
    railway = (ROOT / "railway.toml").read_text()
    for setting in (
        'builder = "DOCKERFILE"',
        'startCommand = "warroom serve"',
        'healthcheckPath = "/healthz"',
        'restartPolicyType = "ON_FAILURE"',
        "/app/checkpoints",
        "/app/backups",
    ):
        assert setting in railway


@dataclass
class Installed:
    """The image's files: a virtualenv with the wheel in it, owned by root, read-only to the
    service's user."""

    root: Path
    venv: Path
    image: Image


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    root = Path(tempfile.mkdtemp(prefix="warroom-image-"))
    root.chmod(0o755)
    try:
        context = root / "context"  # what .dockerignore lets into the build
        context.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, context / name)
        shutil.copytree(
            ROOT / "src",
            context / "src",
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
        )
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
        subprocess.run(
            [*pip, "wheel", "--no-deps", "-w", str(root / "wheels"), str(context)],
            check=True,
            capture_output=True,
        )
        [wheel] = (root / "wheels").glob("*.whl")
        venv = root / "image"
        subprocess.run([_python_for_others(), "-m", "venv", "--without-pip", str(venv)], check=True)
        subprocess.run(
            [*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", str(wheel)],
            check=True,
            capture_output=True,
        )
        # The wheel's dependencies come from the test environment rather than the network.
        site = Path(sysconfig.get_path("purelib", vars={"base": str(venv)}))
        (site / "deps-from-tests.pth").write_text(sysconfig.get_path("purelib") + "\n")
        server_major = _server_major()
        yield Installed(root, venv, Image.read(DOCKERFILE, {"PG_MAJOR": server_major}))
    finally:
        shutil.rmtree(root)


def _python_for_others() -> str:
    """This Python when the service's user can run it, else the system's of the same version
    (the dependencies' compiled parts are built for it)."""
    path = Path(sys.executable).resolve()
    if all(os.stat(parent).st_mode & 0o001 for parent in path.parents):
        return str(path)
    system = shutil.which(
        f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin"
    )
    if system is None:
        pytest.skip(
            f"no Python {sys.version_info.major}.{sys.version_info.minor} that {USER} can run"
        )
    return system


def _server_major() -> str:
    with psycopg.connect(PG_URL) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    return str(int(row[0]) // 10000)


class Container:
    """The image's command run as the unprivileged user, with the volumes at ``volumes``."""

    def __init__(self, installed: Installed, volumes: Path, database_url: str) -> None:
        self.installed = installed
        self.workdir = installed.root / "container" / installed.image.workdir.lstrip("/")
        self.port = free_port()
        mapped = {"/app/checkpoints": "checkpoints", "/app/backups": "backups"}
        env = {
            key: str(volumes / mapped[value]) if value in mapped else value
            for key, value in installed.image.env.items()
        }
        self.env = {
            **env,
            "PATH": f"{installed.venv / 'bin'}:/usr/bin:/bin",
            "HOME": str(self.workdir),
            "PORT": str(self.port),
            "DATABASE_URL": database_url,
        }
        self.lines: list[str] = []

    def reset(self) -> None:
        """A new container: the image's files as they were, the volumes as they are."""
        shutil.rmtree(self.installed.root / "container", ignore_errors=True)
        self.workdir.mkdir(parents=True, mode=0o755)

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(command),
            env=self.env,
            cwd=self.workdir,
            user=USER,
            group=GROUP,
            extra_groups=[],
            capture_output=True,
            text=True,
        )

    def serve(self) -> None:
        """Start the image's CMD; return once it says it is listening."""
        self.process = subprocess.Popen(
            self.installed.image.command,
            env=self.env,
            cwd=self.workdir,
            user=USER,
            group=GROUP,
            extra_groups=[],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if "listening on" in line:
                break
        self._drain = threading.Thread(target=self.lines.extend, args=(self.process.stderr,))
        self._drain.start()
        if self.process.poll() is not None:
            self.stop()
            raise AssertionError(f"warroom serve did not start:\n{''.join(self.lines)}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()
        self._drain.join()
        assert self.process.stderr is not None
        self.process.stderr.close()

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )


@pytest.fixture
def app_database() -> Iterator[str]:
    name = create_pg_database("wrt_image")
    with psycopg.connect(pg_url(name), autocommit=True) as conn:
        conn.execute("CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 300) g")
    try:
        yield pg_url(name)
    finally:
        drop_pg_database(name)


def test_a_redeploy_that_keeps_the_volumes_keeps_everything(
    installed: Installed, app_database: str
) -> None:
    volumes = installed.root / "volumes"
    for name in ("checkpoints", "backups"):  # as the Dockerfile's `install -d -o ... -m 0700`
        (volumes / name).mkdir(parents=True, mode=0o700)
        shutil.chown(volumes / name, USER, GROUP)
    container = Container(installed, volumes, app_database)
    container.reset()

    container.serve()
    try:
        assert f"listening on http://0.0.0.0:{container.port}" in "".join(container.lines)
        created = container.run("warroom", "token", "create", "--role", "admin", "--name", "ops")
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip()
        with container.client(token) as api:
            recorded = api.post(
                "/api/v1/checkpoints/workflow",
                json={"execution_id": "rw-1", "step_id": "download", "state": {"files": 3}},
            )
            assert recorded.status_code == 201, recorded.text
            backup = api.post(
                "/api/v1/checkpoints/database?wait=true", json={"checkpoint_name": "before"}
            )
            assert backup.status_code == 200 and backup.json()["status"] == "succeeded", backup.text
            validation = api.post("/api/v1/checkpoints/deployment")
            assert validation.status_code == 200, validation.text
        health = container.run(*installed.image.healthcheck)
        assert health.returncode == 0, health.stderr
    finally:
        container.stop()
    assert list(container.workdir.iterdir()) == []  # nothing was written outside the volumes
    assert (volumes / "checkpoints" / "catalog.db").is_file()

    container.reset()
    container.serve()
    try:
        with container.client(token) as api:
            listed = api.get("/api/v1/checkpoints/list")
            assert listed.status_code == 200, listed.text  # the token survived
            rows = {(row["type"], row["name"]) for row in listed.json()["checkpoints"]}
            assert ("workflow", "rw-1") in rows and ("database", "before") in rows
            assert any(kind == "deployment" for kind, _ in rows)
            execution = api.get("/api/v1/checkpoints/workflow/rw-1").json()
            assert [c["state"] for c in execution["checkpoints"]] == [{"files": 3}]
            shown = api.get("/api/v1/checkpoints/database/before")
            assert shown.status_code == 200 and shown.json()["tables"] == {"public.orders": 300}
    finally:
        container.stop()
    assert "Traceback" not in "".join(container.lines)
    assert os.stat(volumes / "checkpoints" / "catalog.db").st_uid != 0
