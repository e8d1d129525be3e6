"""A backup's copies in the web UI, in a real headless Chromium against a real ``warroom serve``
with a replica (WARROOM_REPLICAS): the backup's page shows each repository's copy and verifies
them all through the API's verify job; a replica damaged with its size kept (which only reading
every byte sees) fails that job naming the copy, a truncated one shows as damaged on the page
and in the list; a viewer sees the copies but no button."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.e2e.browser import Browser, chromium
from tests.e2e.cli import cli_env
from tests.e2e.server import Server, running_server
from warroom.auth import TokenStore
from warroom.catalog import open_catalog

ALL_COPIES = "button[data-post$='/verify'][data-body*='all_copies']"


@dataclass
class Site:
    server: Server
    browser: Browser
    tokens: dict[str, str]
    primary: Path
    replica: Path

    def replica_parts(self) -> list[Path]:
        folder = self.replica / "database" / "b1"
        return sorted(p for p in folder.iterdir() if p.is_file() and p.name != "manifest.json")

    def copy_badge(self, css: str, location: Path) -> str:
        """The status word of ``location``'s copy in the element ``css`` once it is shown."""
        badge = self.browser.find(f'{css} [data-location="{location}"] .badge')
        return str(badge.get_attribute("data-status"))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    workdir = tmp_path_factory.mktemp("web-copies")
    source = workdir / "app.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(2000)])
    replica = workdir / "replica"
    env = cli_env(
        workdir,
        DATABASE_URL=f"sqlite:///{source}",
        WARROOM_REPLICAS=str(replica),
        WARROOM_SCHEDULER="false",
    )
    catalog = open_catalog(env["WARROOM_CATALOG_URL"])
    store = TokenStore(catalog)
    tokens = {
        name: store.create(name, role)[1] for name, role in [("sre", "admin"), ("wall", "viewer")]
    }
    catalog.close()
    with running_server(env, workdir) as server:
        with server.client(tokens["sre"]) as admin:
            job = admin.post(
                "/api/v1/checkpoints/database?wait=true", json={"checkpoint_name": "b1"}
            ).json()
            assert job["status"] == "succeeded", job["error"]
        with chromium(server.url, workdir / "profile") as browser:
            yield Site(server, browser, tokens, workdir / "backups", replica)


def no_console_errors(browser: Browser) -> None:
    errors = browser.console_errors()
    assert not errors, errors


def test_the_copies_are_shown_and_verified_all_intact(site: Site, tmp_path: Path) -> None:
    ui = site.browser
    ui.sign_in(site.tokens["sre"])
    ui.go("backups")
    assert ui.text('#backups-table tr[data-name="b1"] .copies-cell') == "2/2"
    ui.go("backups/b1")
    assert site.copy_badge("#copies-table", site.primary) == "present"
    assert site.copy_badge("#copies-table", site.replica) == "present"
    ui.click(ALL_COPIES)
    card = ui.job_finished("verify")
    ui.screenshot(tmp_path / "all-copies-intact.png")
    assert card.get_attribute("data-job-status") == "succeeded", card.text
    assert site.copy_badge("#jobs .job:first-child", site.replica) == "intact"
    assert site.copy_badge("#jobs .job:first-child", site.primary) == "intact"
    ui.dismiss_jobs()
    no_console_errors(ui)


def test_a_replica_damaged_with_its_size_kept_fails_the_job_naming_it(
    site: Site, tmp_path: Path
) -> None:
    part = site.replica_parts()[0]
    stored = bytearray(part.read_bytes())
    stored[len(stored) // 2] ^= 0x01  # same size: only a read of every byte sees it
    part.write_bytes(bytes(stored))
    ui = site.browser
    ui.go("backups/b1")
    assert site.copy_badge("#copies-table", site.replica) == "present"  # sizes only
    ui.click(ALL_COPIES)
    card = ui.job_finished("verify")
    ui.screenshot(tmp_path / "all-copies-damaged.png")
    assert card.get_attribute("data-job-status") == "failed", card.text
    error = card.find_element(By.CSS_SELECTOR, "p.error").text
    assert f"{site.replica}: damaged" in error and part.name in error
    assert site.copy_badge("#jobs .job:first-child", site.replica) == "damaged"
    assert site.copy_badge("#jobs .job:first-child", site.primary) == "intact"
    ui.dismiss_jobs()
    no_console_errors(ui)


def test_a_truncated_replica_shows_as_damaged_on_the_page_and_in_the_list(
    site: Site, tmp_path: Path
) -> None:
    part = site.replica_parts()[-1]
    part.write_bytes(part.read_bytes()[:-1])
    ui = site.browser
    ui.go("backups/b1")
    assert site.copy_badge("#copies-table", site.replica) == "damaged"
    assert site.copy_badge("#copies-table", site.primary) == "present"
    ui.screenshot(tmp_path / "copies-damaged.png")
    ui.go("backups")
    cell = ui.text('#backups-table tr[data-name="b1"] .copies-cell')
    assert cell == f"1/2 ✖ damaged in {site.replica}", cell
    no_console_errors(ui)


def test_a_viewer_sees_the_copies_but_cannot_verify(site: Site) -> None:
    ui = site.browser
    ui.sign_in(site.tokens["wall"])
    ui.go("backups/b1")
    assert site.copy_badge("#copies-table", site.replica) == "damaged"
    assert not ui.all(ALL_COPIES)
    no_console_errors(ui)
