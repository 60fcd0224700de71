"""Headless Chromium for the browser tests: Debian's ``chromium`` and ``chromium-driver``
driven by Selenium over the system binaries (named, so Selenium Manager never downloads
either). ``skip_without_chromium()`` at a module's top skips it, saying what is missing;
``make test-browser`` (and CI, PARCOURS_BROWSER=1) installs them.

``console_session`` signs a browser in to the console with an admin key of a tenant of
the test's own; ``screenshot`` saves the page to docs/console/ when PARCOURS_SCREENSHOTS
is set (``make screenshots``), for the README."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.settings import get_settings

CHROMIUM = os.environ.get("PARCOURS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PARCOURS_CHROMEDRIVER", "/usr/bin/chromedriver")
CONSOLE = f"http://127.0.0.1:{get_settings().console_port}"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
WAIT_S = 20


def missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return (f"{path} not found: install Debian's {package} "
                    "(`make test-browser` does, or PARCOURS_BROWSER=1 deploy/local/install.sh)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


def skip_without_chromium() -> None:
    if (reason := missing()) is not None:
        pytest.skip(reason, allow_module_level=True)


def chromium(width: int = 1440, height: int = 900) -> Iterator[Any]:
    """A headless Chromium with an empty profile of its own (a fixture's body)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="parcours-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", f"--window-size={width},{height}",
                     f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: Any, condition: Callable[[Any], Any], what: str,
             seconds: float = WAIT_S) -> Any:
    """Poll ``condition(driver)`` until it is truthy, failing with ``what`` at the deadline."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        NoSuchFrameException,
        StaleElementReferenceException,
        TimeoutException,
        WebDriverException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    # An htmx swap between finding an element and reading it is a "not yet", not a failure.
    ignored = (StaleElementReferenceException, NoSuchElementException, NoSuchFrameException)

    def polled(d: Any) -> Any:
        try:
            return condition(d)
        except WebDriverException as error:
            # chromedriver reports the same race, when the page or node it was reading goes
            # away mid-call, as an "unknown error" ("Cannot find context with specified id",
            # "No node with given id found", both DevTools code -32000): also a "not yet".
            if not _is_inspector_race(error):
                raise
            return False

    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.1,
                             ignored_exceptions=ignored).until(polled)
    except TimeoutException as error:
        raise AssertionError(f"{what}: not seen within {seconds} s at {driver.current_url}"
                             ) from error


def _is_inspector_race(error: Exception) -> bool:
    message = str(error)
    # -32000 is the DevTools protocol's "server error": a context or node that went away
    return "unhandled inspector error" in message and "-32000" in message


def sign_in(driver: Any, admin_key: str, path: str = "/") -> None:
    """Sign in through the console's form, landing on ``path``."""
    from selenium.webdriver.common.by import By

    driver.get(f"{CONSOLE}/sign-in?next={path}")
    driver.find_element(By.ID, "api_key").send_keys(admin_key)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    try:
        wait_for(driver, lambda d: "/sign-in" not in d.current_url, "signed in")
    except AssertionError as error:
        refusal = driver.find_elements(By.ID, "sign-in-error")
        raise AssertionError(f"{error}: {refusal[0].text if refusal else 'no error shown'}"
                             ) from None


def console_errors(driver: Any) -> list[str]:
    """What the page's console logged as errors (a CSP refusal shows up here)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "favicon" not in entry["message"]]


# Every input, select and textarea a person fills has a name a screen reader reads: a
# <label for>, a wrapping <label>, aria-label or aria-labelledby. Hidden inputs do not count.
_UNLABELLED = """
return Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(e => e.type !== 'hidden' && !e.closest('[hidden]'))
  .filter(e => !(e.id && document.querySelector('label[for="' + CSS.escape(e.id) + '"]'))
            && !e.closest('label') && !e.getAttribute('aria-label')
            && !e.getAttribute('aria-labelledby'))
  .map(e => e.outerHTML.slice(0, 120));
"""


def unlabelled_inputs(driver: Any) -> list[str]:
    """The page's form controls without an accessible name (empty when all have one)."""
    found: list[str] = driver.execute_script(_UNLABELLED)
    return found


def screenshot(driver: Any, name: str) -> None:
    """docs/console/<name>.png, when PARCOURS_SCREENSHOTS is set (the README shows them)."""
    if os.environ.get("PARCOURS_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
