"""The transactional seed from the console alone, in headless Chromium: sign in, make a
test profile with sample data, create an event with typed fields, publish it, edit its
message and watch the preview change as the subject is typed (a decimal shown as it was
given), save, send a proof and find it in the SMTP sink, publish the message, send an
event through the ingestion API and look its pKey up. No page logs an error (a CSP
refusal would)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.browser import (
    CONSOLE,
    chromium,
    console_errors,
    screenshot,
    sign_in,
    skip_without_chromium,
    unlabelled_inputs,
    wait_for,
)
from tests.integration.conftest import GATEWAY, eventually, final_status, mails_to
from tests.integration.console_tenant import ConsoleTenant
from tests.integration.console_tenant import console_tenant as console_tenant  # fixture

pytestmark = [pytest.mark.integration, pytest.mark.browser]
skip_without_chromium()

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

EVENT = "EVTconsoleCart"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


def _type(driver: Any, element_id: str, text: str, clear: bool = True) -> None:
    element = driver.find_element(By.ID, element_id)
    if clear:
        element.clear()
    element.send_keys(text)


def _text(driver: Any, element_id: str) -> str:
    found = driver.find_elements(By.ID, element_id)
    return found[0].text if found else ""


async def test_a_marketer_creates_publishes_edits_proofs_and_looks_up_an_event(
        console_tenant: ConsoleTenant, browser: Any):
    email = f"ada-{uuid.uuid4().hex[:10]}@example.com"
    # signing in with the keyboard alone: the key field has the focus, Enter sends
    browser.get(f"{CONSOLE}/sign-in?next=/events")
    screenshot(browser, "sign-in")
    focused = browser.switch_to.active_element
    assert focused.get_attribute("id") == "api_key"
    focused.send_keys(console_tenant.admin_key + Keys.ENTER)
    wait_for(browser, lambda d: d.current_url == f"{CONSOLE}/events", "signed in by keyboard")

    # 0. a test profile whose sample data holds a decimal written 19.90
    browser.get(f"{CONSOLE}/test-profiles/new")
    _type(browser, "profileId", "test-ada")
    _type(browser, "email", email)
    _type(browser, "firstName", "Ada")
    _type(browser, "sampleCtx", '{"cartUrl": "https://shop.example.com/cart", "cartTotal": 19.90}')
    assert unlabelled_inputs(browser) == []
    browser.find_element(By.ID, "save-test-profile").click()
    wait_for(browser, lambda d: "test-ada" in _text(d, "test-profiles"), "the test profile listed")
    stored = (await console_tenant.admin.get("/test-profiles/test-ada")).text
    assert '"cartTotal":19.90' in stored and email in stored

    # 1. the event, with two typed fields (the second row added by htmx)
    browser.get(f"{CONSOLE}/events/new")
    _type(browser, "eventId", EVENT)
    _type(browser, "label", "Cart abandonment")
    Select(browser.find_element(By.ID, "channel")).select_by_value("email")
    Select(browser.find_element(By.ID, "targeting")).select_by_value("event")
    _type(browser, "fields.0.id", "cartUrl")
    browser.find_element(By.ID, "fields.0.required").click()
    browser.find_element(By.ID, "add-field").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "fields.1.id"), "a second field row")
    _type(browser, "fields.1.id", "cartTotal")
    Select(browser.find_element(By.ID, "fields.1.type")).select_by_value("decimal")
    assert unlabelled_inputs(browser) == []
    screenshot(browser, "event-new")
    browser.find_element(By.ID, "fields.1.id").send_keys(Keys.ENTER)  # Enter creates it
    wait_for(browser, lambda d: d.current_url == f"{CONSOLE}/events/{EVENT}", "the event page")
    assert _text(browser, "event-state") == "draft"
    browser.find_element(By.ID, "event-publish").click()
    wait_for(browser, lambda d: _text(d, "event-state") == "published", "published")
    screenshot(browser, "event")

    # 2. the message: the preview follows the typing, before anything is saved
    browser.get(f"{CONSOLE}/events/{EVENT}/message")
    Select(browser.find_element(By.ID, "profileId")).select_by_value("test-ada")
    _type(browser, "template.subject", "Ada, your cart of {{ ctx.cartTotal }} is waiting")
    wait_for(browser, lambda d: _text(d, "preview-subject")
             == "Ada, your cart of 19.90 is waiting", "the preview's subject as typed")
    _type(browser, "template.html",
          '<h1 style="color:#0b57d0">Still thinking, {{ ctx.cartTotal }}?</h1>'
          '<p><a href="{{ ctx.cartUrl }}">Back to your cart</a></p>')
    def framed_heading(driver: Any) -> str:
        driver.switch_to.frame(driver.find_element(By.ID, "preview-html"))
        try:
            found = driver.find_elements(By.TAG_NAME, "h1")
            return found[0].text if found else ""
        finally:
            driver.switch_to.default_content()

    wait_for(browser, lambda d: framed_heading(d) == "Still thinking, 19.90?",
             "the email's HTML in the sandboxed frame")
    _type(browser, "template.subject", "{{ ctx.cartTotal ")  # a broken template
    wait_for(browser, lambda d: "subject" in _text(d, "preview-errors"),
             "the template error named by part")
    _type(browser, "template.subject", "Ada, your cart of {{ ctx.cartTotal }} is waiting")
    wait_for(browser, lambda d: _text(d, "preview-subject")
             == "Ada, your cart of 19.90 is waiting", "the preview back")
    assert unlabelled_inputs(browser) == []
    screenshot(browser, "message-editor")
    browser.find_element(By.ID, "save").click()
    wait_for(browser, lambda d: "Draft saved" in d.page_source, "the draft saved")

    # 3. a proof of the saved draft reaches the SMTP sink
    Select(browser.find_element(By.ID, "profileId")).select_by_value("test-ada")
    browser.find_element(By.ID, "proof").click()
    wait_for(browser, lambda d: "sent to" in _text(d, "proof-outcome"), "the proof's outcome")
    async with httpx.AsyncClient(timeout=10) as http:
        async def proof() -> list[dict[str, Any]] | None:
            return await mails_to(http, email) or None
        mails = await eventually(proof, "the proof in the SMTP sink", 15)
    assert mails[0]["subject"] == "[Proof] Ada, your cart of 19.90 is waiting"

    # 4. publish, then an event from the website is looked up by its pKey
    browser.find_element(By.ID, "message-publish").click()
    wait_for(browser, lambda d: _text(d, "message-state") == "published", "the message live")
    to = f"buyer-{uuid.uuid4().hex[:10]}@example.com"
    async with httpx.AsyncClient(timeout=10, headers={
            "authorization": f"Bearer {console_tenant.ingest_key}"}) as http:
        async def accepted() -> dict[str, Any] | None:
            answer = await http.post(f"{GATEWAY}/v1/events/{EVENT}", content=(
                '{"email": "TO", "ctx": {"cartUrl": "https://s/c", "cartTotal": 42.50}}'
                .replace("TO", to)),
                headers={"content-type": "application/json"})
            return answer.json() if answer.status_code == 202 else None
        sent = await eventually(accepted, "the endpoint live", 10)
        assert (await final_status(http, sent["href"]))["status"] == "processed"
        delivered = await mails_to(http, to)
    assert delivered[0]["subject"] == "Ada, your cart of 42.50 is waiting"
    browser.get(f"{CONSOLE}/lookup")
    _type(browser, "pkey", sent["pKey"])
    browser.find_element(By.CSS_SELECTOR, "form[role=search] button").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "status"), "the status table")
    assert "processed" in _text(browser, "status")
    assert _text(browser, "trace")  # the message's steps
    screenshot(browser, "lookup")
    browser.get(f"{CONSOLE}/events")
    screenshot(browser, "events")
    errors = console_errors(browser)
    assert errors == [], "\n".join(errors)


async def test_an_operator_finds_a_profile_and_reads_the_operations_page(
        console_tenant: ConsoleTenant, browser: Any, pool: Any):
    from shared.adapters.key_store import create_key
    from shared.domain.api_keys import Scope

    async with pool.acquire() as connection:
        profiles_key = await create_key(connection, console_tenant.name, Scope.PROFILES, "t")
    email = f"Grace-{uuid.uuid4().hex[:8]}@Example.com"
    async with httpx.AsyncClient(timeout=10, headers={
            "authorization": f"Bearer {profiles_key}"}) as http:
        put = await http.put(f"{GATEWAY}/v1/profiles/cust-grace", json={
            "email": email, "firstName": "Grace", "city": "Seattle",
            "consent": {"email": {"marketing": "opted-in"}}, "consentSource": "signup-form"})
        assert put.status_code in (200, 201), put.text

    sign_in(browser, console_tenant.admin_key, "/profiles")
    _type(browser, "q", email.lower())  # an address in any case
    browser.find_element(By.CSS_SELECTOR, "form[role=search] button").click()
    wait_for(browser, lambda d: "cust-grace" in _text(d, "profiles"), "the profile found")
    browser.find_element(By.LINK_TEXT, "cust-grace").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "consent"), "the profile page")
    assert "Seattle" in _text(browser, "profile")
    assert "opted-in" in _text(browser, "consent")
    assert unlabelled_inputs(browser) == []
    screenshot(browser, "profile")

    browser.get(f"{CONSOLE}/operations")
    assert "gateway" in _text(browser, "table-services")
    assert "accepted" in _text(browser, "table-throughput")
    first = _text(browser, "summary-window")
    # the fragment refreshes itself every 10 s
    wait_for(browser, lambda d: _text(d, "summary-window") not in ("", first),
             "the operations figures refreshed", 25)
    screenshot(browser, "operations")
    errors = console_errors(browser)
    assert errors == [], "\n".join(errors)
