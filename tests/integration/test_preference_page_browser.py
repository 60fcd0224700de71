"""The unsubscribe links in a real browser (issue 11): headless Chromium (Debian's
``chromium`` and ``chromium-driver``, driven by Selenium over the system binaries) opens
the List-Unsubscribe link of a marketing email read from the SMTP sink, unticks the
channel's marketing consent and a topic, ticks another, saves, and the choices are in
PostgreSQL; the message's one ``unsubscribed`` reaction is produced to Kafka and reaches
its trace once. The one-click link is posted by the browser from a form, as a mailbox
provider's button does, twice: one withdrawal, one reaction.

``make test-browser`` installs Chromium and runs these; without Chromium, its driver or
Selenium they are skipped, saying which is missing."""

from __future__ import annotations

import html
import os
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from tests.integration.browser import chromium, skip_without_chromium
from tests.integration.conftest import eventually
from tests.integration.test_unsubscribe import (
    Tenant,
    address,
    link_of,
    message_id_of,
    received,
)
from tests.integration.test_unsubscribe import tenant as tenant  # the fixture

pytestmark = [pytest.mark.integration, pytest.mark.browser]

skip_without_chromium()

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    yield from chromium()


def _checkbox(driver: WebDriver, element_id: str) -> Any:
    return driver.find_element(By.ID, element_id)


async def _reaction_relayed_and_traced(pool: asyncpg.Pool, tenant_name: str,
                                       message_id: str) -> None:
    """The one reaction was produced to parcours.reactions.v1 (out of the outbox) and the
    reactions service, reading it there, added one trace row."""
    async def probe() -> bool:
        published = await pool.fetchval(
            "SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM reaction_outbox o"
            " WHERE (o.tenant_id, o.reaction_id) = (r.tenant_id, r.reaction_id)))"
            " FROM reactions r"
            " WHERE tenant_id = $1 AND message_id = $2 AND kind = 'unsubscribed'",
            tenant_name, uuid.UUID(message_id))
        traced = await pool.fetchval(
            "SELECT count(*) FROM message_trace WHERE tenant_id = $1 AND message_id = $2"
            " AND stage = 'reaction' AND outcome = 'unsubscribed'",
            tenant_name, uuid.UUID(message_id))
        return bool(published == 1 and traced == 1)

    await eventually(probe, "the unsubscribed reaction relayed to Kafka and traced", 20)


async def test_the_preference_page_in_chromium_changes_consent_and_a_topic(
        tenant: Tenant, browser: WebDriver):
    to = address()
    profile_id = await tenant.profile(to)  # email marketing opted in, newsletter subscribed
    assert (await tenant.send(await tenant.event(marketing=True), to))["status"] == "processed"
    mail = (await received(tenant.http, to))[0]
    link, message_id = link_of(mail), message_id_of(mail)

    browser.get(link)
    assert browser.title == "Your subscriptions"
    assert "The <b>weekly</b> newsletter" in browser.page_source.replace(
        "&lt;", "<").replace("&gt;", ">")  # shown as text, not markup
    marketing = _checkbox(browser, "marketing")
    newsletter = _checkbox(browser, "topic-newsletter")
    offers = _checkbox(browser, "topic-offers")
    assert marketing.is_selected() and newsletter.is_selected() and not offers.is_selected()
    assert await tenant.unsubscribed(message_id) == 0  # opening the page changes nothing

    marketing.click()   # no more offers by email
    newsletter.click()  # leave the newsletter
    offers.click()      # take the offers topic
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located(
        (By.ID, "saved")))
    assert "Your choices are saved." in browser.find_element(By.ID, "saved").text
    assert browser.current_url == f"{link}/preferences"

    consent = await tenant.consent(profile_id)
    assert consent[("marketing", "email")] == ("opted-out", "preferences")
    assert consent[("topic", "newsletter")] == ("unsubscribed", "preferences")
    assert consent[("topic", "offers")] == ("subscribed", "preferences")
    assert await tenant.unsubscribed(message_id) == 1
    await _reaction_relayed_and_traced(tenant.pool, tenant.name, message_id)

    # the link opened again shows what is stored
    browser.get(link)
    assert not _checkbox(browser, "marketing").is_selected()
    assert not _checkbox(browser, "topic-newsletter").is_selected()
    assert _checkbox(browser, "topic-offers").is_selected()
    # and saving it again unchanged writes nothing and records no second reaction
    history_before = await tenant.pool.fetchval(
        "SELECT count(*) FROM consent_history WHERE tenant_id = $1 AND profile_id = $2",
        tenant.name, profile_id)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located(
        (By.ID, "saved")))
    assert await tenant.pool.fetchval(
        "SELECT count(*) FROM consent_history WHERE tenant_id = $1 AND profile_id = $2",
        tenant.name, profile_id) == history_before
    assert await tenant.unsubscribed(message_id) == 1


async def test_the_one_click_link_posted_by_chromium_unsubscribes_once(
        tenant: Tenant, browser: WebDriver):
    """The browser submits RFC 8058's body from a form (as a mailbox provider's button
    posts it), twice; opening the same link (a GET, as a link scanner does) changes
    nothing."""
    to = address()
    profile_id = await tenant.profile(to)
    assert (await tenant.send(await tenant.event(marketing=True), to))["status"] == "processed"
    mail = (await received(tenant.http, to))[0]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link, message_id = link_of(mail), message_id_of(mail)

    browser.get(link)  # a GET only shows the page
    assert browser.title == "Your subscriptions"
    assert (await tenant.consent(profile_id))[("marketing", "email")] == ("opted-in", "test")

    form = ("<!doctype html><form id=f method=post enctype='application/x-www-form-urlencoded'"
            f" action='{html.escape(link, quote=True)}'>"
            "<input type=hidden name=List-Unsubscribe value=One-Click>"
            "<button id=go type=submit>Unsubscribe</button></form>")
    with tempfile.NamedTemporaryFile("w", suffix=".html", delete=False) as page:
        page.write(form)
    try:
        for _ in range(2):
            browser.get(f"file://{page.name}")
            browser.find_element(By.ID, "go").click()
            WebDriverWait(browser, 15).until(lambda driver: driver.current_url == link)
            assert "unsubscribed" in browser.find_element(By.TAG_NAME, "body").text
    finally:
        os.unlink(page.name)

    consent = await tenant.consent(profile_id)
    assert consent[("marketing", "email")] == ("opted-out", "list-unsubscribe")
    assert consent[("topic", "newsletter")] == ("subscribed", "test")  # left alone
    assert await tenant.unsubscribed(message_id) == 1
    await _reaction_relayed_and_traced(tenant.pool, tenant.name, message_id)
