"""The real application in this process, over httpx's ASGI transport, for tests that need an
injected clock or many client addresses (``warroom serve`` is exercised by test_api.py)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx

from warroom.api import create_app
from warroom.auth import TokenStore
from warroom.config import Settings
from warroom.jobs import JobRunner
from warroom.services import Services, build_services


class Clock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class InProcessApi:
    """Calls the app as the client at address ``client``; a 500 fails the test at once."""

    def __init__(self, services: Services, jobs: JobRunner, portal: Any) -> None:
        self.services, self.clock = services, Clock()
        self.app = create_app(services, jobs, clock=self.clock)
        self.tokens = {
            role: TokenStore(services.catalog).create(f"{role}-bot", role)[1]
            for role in ("viewer", "operator", "admin")
        }
        self._portal = portal
        self._clients: dict[str, httpx.AsyncClient] = {}

    def call(
        self,
        method: str,
        path: str,
        *,
        client: str = "10.0.0.1",
        token: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        if client not in self._clients:
            transport = httpx.ASGITransport(
                app=self.app, raise_app_exceptions=False, client=(client, 40000)
            )
            self._clients[client] = httpx.AsyncClient(
                transport=transport, base_url="http://warroom.test"
            )
        headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        send = functools.partial(
            self._clients[client].request, method, path, headers=headers, **kwargs
        )
        response: httpx.Response = self._portal.call(send)
        assert response.status_code != 500, response.text
        return response

    def close(self) -> None:
        for client in self._clients.values():
            self._portal.call(client.aclose)


@contextmanager
def in_process_api(tmp_path: Path, **settings: Any) -> Iterator[InProcessApi]:
    """The app over fresh directories (``settings`` overrides, e.g. ``catalog_url``), with a
    viewer, an operator and an admin token in ``tokens``."""
    config = Settings(
        backup_dir=tmp_path / "backups",
        checkpoint_dir=tmp_path / "checkpoints",
        **{"catalog_url": f"sqlite:///{tmp_path}/catalog.db", **settings},
    )
    with (
        build_services(config) as services,
        anyio.from_thread.start_blocking_portal() as portal,
    ):
        jobs = JobRunner(services.catalog, "in-process-test")
        api = InProcessApi(services, jobs, portal)
        try:
            yield api
        finally:
            api.close()
            jobs.close()
