"""Debian's headless Chromium driven by Selenium, for the web UI's tests.

Waits are explicit (``WebDriverWait`` until a condition holds), with a generous timeout that
only ends a real hang; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT = 90.0  # seconds: ends a hang, never paces a test
T = TypeVar("T")
IGNORED = (NoSuchElementException, StaleElementReferenceException)

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,800",
]


@dataclass
class Browser:
    driver: webdriver.Chrome
    base_url: str

    def wait(self, condition: Callable[[Any], T | None | bool], message: str = "") -> T:
        """``condition``'s first truthy answer; an element replaced meanwhile (a screen is
        swapped when a job finishes) or not there yet counts as a falsy answer."""
        waiting = WebDriverWait(self.driver, WAIT, ignored_exceptions=IGNORED)
        return waiting.until(lambda d: condition(d), message)  # type: ignore[no-any-return]

    def find(self, css: str) -> WebElement:
        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css), css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        return str(self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css).text, css))

    def go(self, screen: str) -> None:
        """Show ``#/<screen>`` and wait until it has been rendered (again, if it is shown)."""
        self.driver.execute_script(
            "document.getElementById('main').dataset.screen = '';"
            "if (location.hash === '#/' + arguments[0])"
            "  window.dispatchEvent(new HashChangeEvent('hashchange'));"
            "else location.hash = '#/' + arguments[0];",
            screen,
        )
        self.find(f'main[data-screen="{screen}"]')

    def sign_in(self, token: str) -> None:
        """Sign in by keyboard (type the token, press Enter) and wait for the screen the
        hash names (the overview when it names none)."""
        if self.all("#signout"):
            self.find("#signout").click()
        field = self.find("#token")
        self.wait(lambda d: field.is_displayed())
        field.send_keys(token + Keys.ENTER)
        self.find("main[data-screen]")

    def click(self, css: str) -> None:
        """Click ``css``, again if the screen was swapped under it before the click."""
        self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css).click() or True, css)

    def type(self, css: str, keys: str) -> None:
        self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css).send_keys(keys) or True, css)

    def confirm(self, typed: str | None = None) -> None:
        """Accept the confirmation dialog, typing ``typed`` where it asks for it."""
        dialog = self.find("dialog#confirm[open]")
        if typed is not None:
            dialog.find_element(By.ID, "confirm-typed").send_keys(typed)
        ok = dialog.find_element(By.ID, "confirm-ok")
        self.wait(lambda d: ok.is_enabled())
        ok.click()
        self.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog#confirm[open]"))

    def dismiss_jobs(self) -> None:
        """Dismiss the finished jobs' cards (as a person tidies the tray)."""
        for button in self.all("#jobs button[data-dismiss]"):
            button.click()
        self.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, "#jobs section.job"))

    def job_finished(self, kind: str) -> WebElement:
        """The newest job card (the tray's first), once it shows a finished job of ``kind``."""
        card = f'#jobs > section.job:first-child[aria-label="Job {kind}"]'
        return self.find(f'{card}[data-job-status="succeeded"], {card}[data-job-status="failed"]')

    def screenshot(self, path: Path) -> Path:
        self.driver.save_screenshot(str(path))
        return path

    def console_errors(self) -> list[dict[str, Any]]:
        """The browser console's errors since the last call."""
        return [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]


@contextmanager
def chromium(base_url: str, profile: Path) -> Iterator[Browser]:
    """One headless Chromium with a new empty profile in ``profile``."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        raise RuntimeError(
            f"{' and '.join(missing)} missing: install Debian's chromium and chromium-driver "
            "(./test.sh does)"
        )
    options = Options()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.get(base_url + "/")
        yield Browser(driver, base_url)
    finally:
        driver.quit()
