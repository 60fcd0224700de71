"""The browser tests' ``wait_for``: chromedriver's page-swap race is a "not yet", any other
WebDriver error still fails the test at once."""

from __future__ import annotations

import pytest

pytest.importorskip("selenium")

from selenium.common.exceptions import WebDriverException

from tests.integration.browser import wait_for

RACE = ('unknown error: unhandled inspector error: '
        '{"code":-32000,"message":"Cannot find context with specified id"}')


class Page:
    current_url = "http://console.test/events"


def test_the_inspector_race_is_polled_again_until_the_condition_holds():
    calls = iter([WebDriverException(RACE), WebDriverException(RACE), "published"])

    def condition(_driver: Page) -> str:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert wait_for(Page(), condition, "the message live", seconds=5) == "published"


def test_another_webdriver_error_fails_at_once():
    def condition(_driver: Page) -> str:
        raise WebDriverException("unknown error: session deleted because of page crash")

    with pytest.raises(WebDriverException, match="page crash"):
        wait_for(Page(), condition, "anything", seconds=5)


def test_a_race_that_never_ends_fails_with_what_was_awaited():
    def condition(_driver: Page) -> str:
        raise WebDriverException(RACE)

    with pytest.raises(AssertionError, match=r"the message live: not seen within 0\.3 s"):
        wait_for(Page(), condition, "the message live", seconds=0.3)
