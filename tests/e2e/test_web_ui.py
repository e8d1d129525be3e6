"""The web UI in a real headless Chromium against a real ``warroom serve`` and PostgreSQL.

One browser and one server for the module; the tests run in order as one SRE's session would
(sign in, look, act), then as a viewer. Each saves screenshots of the screens it visits under
its own output directory (``tmp_path``) and checks the browser console has no error.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.conftest import create_pg_database, drop_pg_database, pg_database_exists, pg_url
from tests.e2e.browser import Browser, chromium
from tests.e2e.cli import cli_env
from tests.e2e.server import Server, running_server
from warroom.auth import TokenStore
from warroom.catalog import open_catalog

pytestmark = pytest.mark.postgres

FAILING_WORKFLOW = textwrap.dedent(
    """
    from warroom import AutomationEngine

    engine = AutomationEngine()

    @engine.step()
    def extract():
        return {"rows": [1, 2, 3]}

    @engine.step(retries=1, retry_delay=0)
    def load(batch):
        raise RuntimeError("target table locked")

    @engine.workflow("nightly-etl")
    def etl():
        return load(extract())

    try:
        engine.execute_workflow("nightly-etl", execution_id="etl-1")
    except Exception:
        pass
    """
)
# A state that would run script if any screen rendered it as markup.
HOSTILE = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


@dataclass
class Site:
    server: Server
    browser: Browser
    tokens: dict[str, str]
    database: str
    backup: str
    restored: list[str]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    workdir = tmp_path_factory.mktemp("web-ui")
    database = create_pg_database("wrt_ui_data")
    with psycopg.connect(pg_url(database), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE accounts AS SELECT g AS id, md5(g::text) AS owner "
            "FROM generate_series(1, 20000) g"
        )
    # The scheduler stays off: a catch-up backup at start-up would race the test's own.
    env = cli_env(workdir, DATABASE_URL=pg_url(database), WARROOM_SCHEDULER="false")
    catalog = open_catalog(env["WARROOM_CATALOG_URL"])
    store = TokenStore(catalog)
    tokens = {
        name: store.create(name, role)[1]
        for name, role in [
            ("sre-admin", "admin"),
            ("night-operator", "operator"),
            ("dashboard", "viewer"),
            ("old-ci", "operator"),
        ]
    }
    catalog.close()
    (workdir / "etl.py").write_text(FAILING_WORKFLOW)
    subprocess.run(
        [sys.executable, "etl.py"], env=env, cwd=workdir, check=True, capture_output=True
    )
    restored: list[str] = []
    try:
        with running_server(env, workdir) as server:
            with server.client(tokens["sre-admin"]) as admin:
                job = admin.post("/api/v1/checkpoints/database?wait=true").json()
                assert job["status"] == "succeeded", job["error"]
                posted = admin.post(
                    "/api/v1/checkpoints/workflow",
                    json={"execution_id": "ext-xss", "step_id": "import", "state": {"n": HOSTILE}},
                )
                assert posted.status_code == 201, posted.text
            with chromium(server.url, workdir / "profile") as browser:
                yield Site(server, browser, tokens, database, job["result"]["name"], restored)
    finally:
        drop_pg_database(database)
        for name in restored:
            drop_pg_database(name)


def test_the_shell_holds_no_data_and_forbids_inline_script(site: Site) -> None:
    with site.server.client() as anonymous:
        shell = anonymous.get("/")
        assert shell.status_code == 200 and 'id="signin"' in shell.text
        policy = shell.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert anonymous.get("/ui/overview").status_code == 401
        assert anonymous.get("/static/htmx.min.js").status_code == 200


def no_console_errors(browser: Browser) -> None:
    errors = browser.console_errors()
    assert not errors, errors


def test_sign_in_and_see_a_source_with_its_backups(site: Site, tmp_path: Path) -> None:
    ui = site.browser
    ui.sign_in(site.tokens["sre-admin"])
    assert "sre-admin · admin" in ui.text("#who")
    card = ui.find("article.card")
    assert site.database in card.text and site.backup in card.text
    assert "never restore-tested" in card.text  # a word, not only a colour
    ui.screenshot(tmp_path / "overview.png")

    ui.go("backups")
    row = ui.find(f'#backups-table tr[data-name="{site.backup}"]')
    assert "completed" in row.text
    ui.screenshot(tmp_path / "backups.png")

    ui.go("backups?status=damaged")
    assert "No backup matches." in ui.text("#backups-table")
    ui.go(f"backups/{site.backup}")
    parts = ui.all("#parts-table tbody tr")
    assert parts and len(ui.find("#parts-table code.hash").text) == 64
    assert "Never verified" in ui.text("main")
    ui.screenshot(tmp_path / "backup.png")
    no_console_errors(ui)


def test_restore_test_runs_and_finishes(site: Site, tmp_path: Path) -> None:
    ui = site.browser
    ui.go(f"backups/{site.backup}")
    ui.click("button[data-post$='/verify'][data-body*='true']")
    card = ui.job_finished("verify")
    ui.screenshot(tmp_path / "restore-test-finished.png")
    assert card.get_attribute("data-job-status") == "succeeded", card.text
    assert "restore-tested" in card.text
    # The screen refreshes when the job finishes: the history shows the restore test.
    ui.wait(lambda d: "restore-tested" in d.find_element(By.CSS_SELECTOR, "ol.checks").text)
    ui.screenshot(tmp_path / "backup-restore-tested.png")
    no_console_errors(ui)


def test_restore_into_a_new_database_with_confirmation(site: Site, tmp_path: Path) -> None:
    ui = site.browser
    target = f"wrt_ui_restored_{uuid.uuid4().hex[:8]}"
    site.restored.append(target)
    ui.go(f"backups/{site.backup}")
    ui.dismiss_jobs()
    ui.type("input[name='new_db']", target + Keys.ENTER)
    prompt = ui.text("#confirm-prompt")
    assert target in prompt and site.backup in prompt
    ui.screenshot(tmp_path / "restore-confirm.png")
    ui.confirm()
    card = ui.job_finished("restore")
    ui.screenshot(tmp_path / "restore-finished.png")
    assert card.get_attribute("data-job-status") == "succeeded", card.text
    assert target in card.text and "none (a new database)" in card.text
    assert pg_database_exists(target)
    with psycopg.connect(pg_url(target)) as conn:
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (20000,)
    no_console_errors(ui)


def test_restore_over_the_configured_database_needs_its_name_typed(
    site: Site, tmp_path: Path
) -> None:
    ui = site.browser
    ui.go(f"backups/{site.backup}")
    ui.dismiss_jobs()
    assert "There is no safety backup yet." in ui.text(".over")
    ui.click("button.danger[data-typed]")
    ui.type("#confirm-typed", "not-the-name")
    assert not ui.find("#confirm-ok").is_enabled()  # a wrong name cannot confirm
    ui.screenshot(tmp_path / "restore-over-confirm.png")
    ui.find("#confirm-typed").clear()
    ui.confirm(typed=site.database)
    card = ui.job_finished("restore")
    assert card.get_attribute("data-job-status") == "succeeded", card.text
    safety = ui.text("#jobs a[href^='#/backups/']")
    assert safety and safety != site.backup
    # Before the next restore, the screen shows the safety backup this one left.
    ui.wait(lambda d: safety in ui.text(".over"))
    ui.screenshot(tmp_path / "restore-over-finished.png")
    no_console_errors(ui)


def test_resume_a_failed_workflow(site: Site, tmp_path: Path) -> None:
    ui = site.browser
    ui.go("workflows?status=failed")
    row = ui.find('#executions-table tr[data-execution="etl-1"]')
    assert "nightly-etl" in row.text and "failed" in row.text
    ui.screenshot(tmp_path / "workflows.png")
    ui.go("workflows/etl-1")
    assert [s.get_attribute("data-step") for s in ui.all("#steps li.step")] == ["0", "1"]
    failed = ui.text("#steps li[data-step='1']")
    assert "target table locked" in failed and "2 attempt(s)" in failed
    ui.click("#steps li[data-step='0'] summary")
    assert '"rows"' in ui.text("#steps li[data-step='0'] pre.json")
    ui.screenshot(tmp_path / "workflow-failed.png")
    ui.click("button[data-post$='/resume']")
    ui.confirm()
    ui.wait(lambda d: "pending" in d.find_element(By.ID, "screen-title").text)
    assert not ui.all("button[data-post$='/resume']")
    ui.screenshot(tmp_path / "workflow-resumed.png")
    no_console_errors(ui)


def test_a_hostile_state_is_shown_as_text(site: Site, tmp_path: Path) -> None:
    ui = site.browser
    ui.go("workflows/ext-xss")
    ui.click("#steps summary")
    assert HOSTILE.replace('"', '\\"') in ui.text("#steps pre.json")
    assert ui.driver.execute_script("return window.__xss === undefined")
    assert not ui.all("main script, main img")
    ui.driver.execute_script("document.querySelector('#steps pre.json').scrollIntoView()")
    ui.screenshot(tmp_path / "workflow-hostile-state.png")
    no_console_errors(ui)


def test_deployments_validate_and_rollback_with_confirmation(site: Site, tmp_path: Path) -> None:
    ui = site.browser
    ui.go("deployments")
    ui.click("button[data-post='/api/v1/checkpoints/deployment']")
    ui.click("li[data-deployment^='validation-'] summary")
    ui.screenshot(tmp_path / "deployments.png")
    ui.dismiss_jobs()
    ui.click("button[data-post='/api/v1/deployments/rollback']")
    assert "Roll back" in ui.text("#confirm-prompt")
    ui.confirm()
    card = ui.job_finished("rollback")
    # Nothing was deployed before: the rollback says so instead of guessing a version.
    assert card.get_attribute("data-job-status") == "failed"
    assert "no earlier successful deployment" in card.text
    no_console_errors(ui)


def test_admin_creates_and_revokes_tokens(site: Site, tmp_path: Path) -> None:
    ui = site.browser
    ui.go("admin")
    ui.type("form[data-post='/api/v1/tokens'] input[name='name']", "new-bot" + Keys.ENTER)
    secret = ui.text("dialog#secret[open] #secret-value")
    assert secret.startswith("wr_")
    ui.screenshot(tmp_path / "token-created.png")
    ui.click("dialog#secret[open] button")
    ui.find('#tokens-table tr[data-token="new-bot"]')
    with site.server.client(secret) as new_bot:
        assert new_bot.get("/api/v1/whoami").json()["name"] == "new-bot"

    ui.click('#tokens-table tr[data-token="old-ci"] button[data-post$="/revoke"]')
    ui.confirm()
    ui.wait(lambda d: "revoked" in ui.text('tr[data-token="old-ci"]'))
    with site.server.client(site.tokens["old-ci"]) as old_ci:
        assert old_ci.get("/api/v1/whoami").status_code == 401
    # The UI's actions are API calls: the audit log has them, by the signed-in token.
    ui.go("admin")
    audit = ui.text("#audit-table")
    assert "sre-admin" in audit and "/revoke" in audit and "POST /api/v1/tokens" in audit
    assert "schedules-table" in ui.driver.page_source
    ui.screenshot(tmp_path / "admin.png")
    log = site.server.log.read_text()
    assert secret not in ui.driver.page_source and secret not in log
    assert site.tokens["sre-admin"] not in log and "wr_" not in ui.driver.current_url
    no_console_errors(ui)


def test_keyboard_reaches_the_screens(site: Site) -> None:
    ui = site.browser
    ui.go("overview")
    ui.driver.execute_script("document.activeElement.blur()")
    body = ui.driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    reached = []
    for _ in range(12):
        active = ui.driver.switch_to.active_element
        reached.append(active.text)
        if active.text == "Backups":
            active.send_keys(Keys.ENTER)
            break
        active.send_keys(Keys.TAB)
    assert "Backups" in reached, reached
    ui.find('main[data-screen="backups"]')
    no_console_errors(ui)


def test_viewer_sees_no_destructive_buttons_and_the_api_refuses_them(
    site: Site, tmp_path: Path
) -> None:
    ui = site.browser
    ui.sign_in(site.tokens["dashboard"])
    assert "dashboard · viewer" in ui.text("#who")
    assert [a.text for a in ui.all("#nav a")] == ["Overview", "Backups", "Workflows", "Deployments"]
    for screen in ("overview", f"backups/{site.backup}", "workflows/etl-1", "deployments"):
        ui.go(screen)
        assert not ui.all("main button[data-post], main form[data-post]"), screen
        ui.screenshot(tmp_path / f"viewer-{screen.split('/')[0]}.png")
    with site.server.client(site.tokens["dashboard"]) as viewer:
        name = site.backup
        refused = [
            viewer.post(f"/api/v1/checkpoints/database/{name}/verify", json={}),
            viewer.post(f"/api/v1/checkpoints/restore/database/{name}", json={"new_db": "x"}),
            viewer.post("/api/v1/workflows/executions/etl-1/cancel"),
            viewer.post("/api/v1/tokens/sre-admin/revoke"),
            viewer.post("/api/v1/deployments/rollback", json={"confirm": True}),
            viewer.get("/ui/admin"),
        ]
        assert [r.status_code for r in refused] == [403] * len(refused)
    no_console_errors(ui)


def test_phone_sized_screen(site: Site, tmp_path: Path) -> None:
    ui = site.browser
    ui.driver.set_window_size(390, 844)
    try:
        for screen in ("overview", f"backups/{site.backup}", "workflows/etl-1"):
            ui.go(screen)
            overflow = ui.driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, (screen, overflow)
            ui.screenshot(tmp_path / f"phone-{screen.split('/')[0]}.png")
    finally:
        ui.driver.set_window_size(1280, 800)
    no_console_errors(ui)
