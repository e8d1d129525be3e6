"""``/docs`` and ``/redoc`` work with no network: every script, style sheet and icon the pages
load is served by the service itself, and nothing points elsewhere."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.e2e.cli import cli_env
from tests.e2e.server import Server, running_server

REFERENCE = re.compile(r"""(?:src|href|url|spec-url)\s*[=:]\s*["']([^"']+)["']""")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("docs")
    with running_server(cli_env(workdir), workdir) as running:
        yield running


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_need_no_external_url(server: Server, page: str) -> None:
    with server.client() as client:
        answer = client.get(page)
        assert answer.status_code == 200 and "text/html" in answer.headers["content-type"]
        html = answer.text
        assert "http://" not in html and "https://" not in html and "//cdn" not in html
        references = REFERENCE.findall(html)
        assert references and all(ref.startswith("/") for ref in references), references
        for reference in references:
            loaded = client.get(reference)
            assert loaded.status_code == 200, reference
            assert len(loaded.content) > 0
        assert any(ref.endswith(".js") for ref in references)
