"""``make demo`` as CI runs it: the seed scenarios on the local stack — S1, the
cart-abandonment email, and S2, the seed journey in test mode and then published, with
the per-node counts checked against what it generated — end with ``demo OK``. Then, as
the README says, the admin key it printed opens the console, where the seed journey is
drawn with those counts (headless Chromium)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.browser import (
    CONSOLE,
    chromium,
    missing,
    screenshot,
    sign_in,
    wait_for,
)
from tests.integration.conftest import ROOT

# What the demo generates (deploy/local/demo_journey.py checks the same through the API).
LIVE_COUNTS = {"entry": {"entered": "6"}, "mail": {"actionSent": "6"},
               "push": {"actionSent": "6"}, "react": {"reaction": "2", "timedOut": "4"},
               "reminder": {"actionSent": "4"}, "buy": {"event": "2", "waiting": "4"},
               "thanks": {"actionSent": "2"}, "done": {"exited": "2"}}


@pytest.fixture(scope="module")
def demo() -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "deploy/local/demo.py"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def test_make_demo_runs_both_seed_scenarios_to_demo_ok(
        demo: subprocess.CompletedProcess[str]) -> None:
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "S1 OK" in demo.stdout and demo.stdout.rstrip().endswith("demo OK"), \
        demo.stdout[-3000:]
    assert "live run: every count as generated" in demo.stdout
    assert "test run: every count as generated" in demo.stdout


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if (reason := missing()) is not None:
        pytest.skip(reason)
    yield from chromium()


def _row(driver: Any, node: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.ID, f"counts-{node}")
    return found[0].text if found else ""


@pytest.mark.browser
def test_the_key_the_demo_printed_shows_the_seed_journey_counted_in_the_console(
        demo: subprocess.CompletedProcess[str], browser: Any) -> None:
    printed = re.search(r"tenant demo-journeys \(S2[^)]*\): (prc_admin_\S+)", demo.stdout)
    assert printed, demo.stdout[-2000:]
    sign_in(browser, printed.group(1), "/journeys/seed")
    assert browser.current_url == f"{CONSOLE}/journeys/seed"

    def as_generated(driver: Any) -> bool:
        return all(f"{key} {value}" in _row(driver, node) or
                   _cell(driver, node, key) == value
                   for node, keys in LIVE_COUNTS.items() for key, value in keys.items())
    wait_for(browser, as_generated, "every node's count as the demo generated it", 20)
    screenshot(browser, "journey-demo")


def _cell(driver: Any, node: str, key: str) -> str:
    from selenium.webdriver.common.by import By

    cells = driver.find_elements(By.CSS_SELECTOR, f"#counts-{node} td[data-count={key}]")
    return cells[0].text if cells else ""
