"""The console's sign-in, session and protections over HTTP (no browser needed): the
session cookie's flags, CSRF on every form, no open redirect, the CSP on every page, a
revoked key ending its session, failed sign-ins limited, and a tenant seeing only its own
events. The pages themselves are driven in Chromium (test_console_browser.py)."""

from __future__ import annotations

import html
import re

import asyncpg
import httpx
import pytest

from services.console.session import COOKIE
from tests.integration.console_tenant import ConsoleTenant, console_client
from tests.integration.console_tenant import console_tenant as console_tenant  # fixture

pytestmark = pytest.mark.integration


def _hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden input {name!r} in the page"
    return found.group(1)


async def signed_in(client: httpx.AsyncClient, key: str, next_: str = "/") -> httpx.Response:
    form = await client.get("/sign-in", params={"next": next_})
    return await client.post("/sign-in", data={
        "api_key": key, "signin_token": _hidden(form.text, "signin_token"), "next": next_})


async def test_a_page_without_a_session_goes_to_the_sign_in_page():
    async with console_client() as client:
        page = await client.get("/events")
        assert page.status_code == 303 and page.headers["location"] == "/sign-in?next=/events"
        fragment = await client.post("/events/EVTx/message/preview",
                                     headers={"hx-request": "true"})
        assert fragment.status_code == 204  # htmx is told to go there, not given the page
        assert fragment.headers["hx-redirect"].startswith("/sign-in")


async def test_signing_in_sets_a_protected_cookie_and_lands_where_asked(
        console_tenant: ConsoleTenant):
    async with console_client() as client:
        answer = await signed_in(client, console_tenant.admin_key, "/lookup")
        assert answer.status_code == 303 and answer.headers["location"] == "/lookup"
        cookie = next(v for k, v in answer.headers.multi_items()
                      if k == "set-cookie" and v.startswith(f"{COOKIE}="))
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=28800" in cookie
        assert console_tenant.admin_key not in cookie  # sealed, not readable
        page = await client.get("/events")
        assert page.status_code == 200
        assert f"Console test {console_tenant.name[-8:]}" in page.text  # the tenant's name
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src")[0]
        assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)  # no inline script
        assert page.headers["cache-control"] == "no-store"


async def test_wrong_keys_are_refused_with_what_to_do(console_tenant: ConsoleTenant):
    async with console_client() as client:
        wrong = await signed_in(client, "prc_admin_nothing_like_a_key")
        assert wrong.status_code == 401 and "parcours keys create --scope admin" in wrong.text
        ingest = await signed_in(client, console_tenant.ingest_key)
        assert ingest.status_code == 401  # an ingest key is not an admin key
        assert COOKIE not in client.cookies


async def test_the_sign_in_form_needs_its_own_token_and_never_redirects_elsewhere(
        console_tenant: ConsoleTenant):
    async with console_client() as client:
        forged = await client.post("/sign-in", data={"api_key": console_tenant.admin_key,
                                                     "signin_token": "x", "next": "/"})
        assert forged.status_code == 403 and COOKIE not in client.cookies
        for elsewhere in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
            answer = await signed_in(client, console_tenant.admin_key, elsewhere)
            assert answer.status_code == 303 and answer.headers["location"] == "/"


async def test_every_form_needs_the_sessions_csrf_token(console_tenant: ConsoleTenant):
    async with console_client() as client:
        await signed_in(client, console_tenant.admin_key)
        body = {"eventId": "EVTcsrf", "label": "x", "channel": "email", "targeting": "event"}
        refused = await client.post("/events", data=body)
        assert refused.status_code == 403 and "Reload the page" in refused.text
        assert (await console_tenant.admin.get("/events/EVTcsrf")).status_code == 404
        page = await client.get("/events/new")
        token = _hidden(page.text, "csrf")
        created = await client.post("/events", data={**body, "csrf": token})
        assert created.status_code == 303 and created.headers["location"] == "/events/EVTcsrf"
        # htmx requests carry it as a header instead
        out = await client.post("/sign-out", headers={"x-csrf-token": token})
        assert out.status_code == 303
        assert (await client.get("/events")).status_code == 303  # signed out


async def test_a_revoked_key_ends_its_session(console_tenant: ConsoleTenant,
                                             pool: asyncpg.Pool):
    from shared.adapters.key_store import create_key
    from shared.domain.api_keys import Scope

    async with pool.acquire() as connection:
        key = await create_key(connection, console_tenant.name, Scope.ADMIN, "to revoke")
    async with console_client() as client:
        await signed_in(client, key)
        assert (await client.get("/events")).status_code == 200
        async with pool.acquire() as connection:
            await connection.execute("UPDATE api_keys SET revoked_at = now() WHERE key_id = $1",
                                     key.split("_")[2][:12])
        async def refused() -> bool:
            answer = await client.get("/events")
            return answer.status_code == 303 and answer.headers["location"].startswith(
                "/sign-in")
        from tests.integration.conftest import eventually
        await eventually(refused, "the revoked key's session sent to the sign-in page", 15)


async def test_a_tenant_sees_only_its_own_events(console_tenant: ConsoleTenant,
                                                 admin: httpx.AsyncClient):
    ours = await console_tenant.admin.post("/events", json={
        "eventId": "EVTconsoleOurs", "label": "ours", "channel": "email",
        "targeting": "event"})
    assert ours.status_code in (201, 409), ours.text
    async with console_client() as client:
        await signed_in(client, console_tenant.admin_key)
        page = await client.get("/events")
        assert "EVTconsoleOurs" in page.text
        others = [e["config"]["eventId"] for e in (await admin.get("/events")).json()][:5]
        assert others and not any(other in page.text for other in others)
        assert (await client.get(f"/events/{others[0]}")).status_code == 404


async def _csrf(client: httpx.AsyncClient) -> str:
    return _hidden((await client.get("/events/new")).text, "csrf")


async def test_the_apis_errors_show_beside_the_field_they_name(console_tenant: ConsoleTenant):
    async with console_client() as client:
        await signed_in(client, console_tenant.admin_key)
        token = await _csrf(client)
        page = await client.post("/events", data={
            "csrf": token, "eventId": "not an id", "label": "x", "channel": "email",
            "targeting": "event", "fields.0.id": "9starts-with-a-digit",
            "fields.0.type": "string"})
        assert page.status_code == 422
        assert re.search(r'id="eventId"[^>]*aria-invalid="true"', page.text)
        assert re.search(r'<p class="field-error" id="err-eventId">[^<]*pattern', page.text)
        assert 'value="not an id"' in page.text  # what was typed is kept
        bad_json = await client.post("/events", data={
            "csrf": token, "eventId": "EVTconsoleJson", "label": "x", "channel": "email",
            "targeting": "event", "collections": "[{"})
        assert bad_json.status_code == 422
        assert re.search(r'id="err-collections">not JSON', bad_json.text)


async def test_saving_edits_a_draft_names_a_broken_part_and_versions_compare(
        console_tenant: ConsoleTenant):
    event_id = "EVTconsoleVersions"
    admin = console_tenant.admin
    assert (await admin.post("/events", json={"eventId": event_id, "label": "v",
                                              "channel": "sms", "targeting": "event"})
            ).status_code == 201
    assert (await admin.post(f"/events/{event_id}/publish")).status_code == 200
    async with console_client() as client:
        await signed_in(client, console_tenant.admin_key)
        token = await _csrf(client)
        form = {"csrf": token, "channel": "sms"}
        broken = await client.post(f"/events/{event_id}/message/save",
                                   data={**form, "template.text": "Hi {{ ctx.x "})
        assert broken.status_code == 422
        assert re.search(r'id="err-text">', broken.text)
        assert "Hi {{ ctx.x " in broken.text  # the text typed, kept for fixing
        saved = await client.post(f"/events/{event_id}/message/save",
                                  data={**form, "template.text": "First text"})
        assert saved.status_code == 200 and "Draft saved" in saved.text
        # the page comes with its preview rendered (at once, and without JavaScript)
        assert '<div class="phone" id="preview-text">First text</div>' in saved.text
        assert "10 characters (gsm7), 1 segment" in saved.text
        published = await client.post(f"/events/{event_id}/message/publish", data=form)
        assert 'id="message-state">published' in published.text
        paused = await client.post(f"/events/{event_id}/message/pause", data=form)
        assert 'id="message-state">paused' in paused.text
        resumed = await client.post(f"/events/{event_id}/message/resume", data=form)
        assert 'id="message-state">published' in resumed.text
        await client.post(f"/events/{event_id}/message/save",
                          data={**form, "template.text": "Second text é"})
        versions = (await admin.get(f"/events/{event_id}/message")).json()["versions"]
        assert [v["state"] for v in versions] == ["draft", "published"]
        numbers = [v["version"] for v in versions]
        side = await client.get(f"/events/{event_id}/message/compare",
                                params={"a": numbers[1], "b": numbers[0]})
        assert side.status_code == 200
        assert "First text" in side.text and "Second text é" in side.text
        assert "changed" in side.text and "+Second text é" in side.text
        preview = await client.post(f"/events/{event_id}/message/preview",
                                    data={**form, "template.text": "Ünïcode ok"},
                                    headers={"x-csrf-token": token, "hx-request": "true"})
        assert 'id="sms-shape">10 UTF-16 units (ucs2), 1 segment' in preview.text


async def test_a_test_profile_form_names_what_is_wrong_and_keeps_decimals(
        console_tenant: ConsoleTenant):
    async with console_client() as client:
        await signed_in(client, console_tenant.admin_key)
        token = await _csrf(client)
        form = {"csrf": token, "creating": "1", "profileId": "test-form", "firstName": "Tess"}
        bad_email = await client.post("/test-profiles", data={**form, "email": "not-an-address"})
        assert bad_email.status_code == 422
        assert re.search(r'id="err-email">', bad_email.text)
        bad_json = await client.post("/test-profiles", data={**form, "sampleCtx": "{1"})
        assert bad_json.status_code == 422 and re.search(r'id="err-sampleCtx">not JSON',
                                                         bad_json.text)
        saved = await client.post("/test-profiles", data={
            **form, "email": "tess@example.com", "sampleCtx": '{"total": 19.90}'})
        assert saved.status_code == 303
        assert '"total":19.90' in (await console_tenant.admin.get("/test-profiles/test-form")).text
        shown = await client.get("/test-profiles/test-form")
        assert "&#34;total&#34;: 19.90" in shown.text and "readonly" in shown.text
        gone = await client.post("/test-profiles/test-form/delete", data={"csrf": token})
        assert gone.status_code == 303
        assert (await console_tenant.admin.get("/test-profiles/test-form")).status_code == 404


async def test_without_javascript_add_a_field_posts_the_form_back_with_one_more_row(
        console_tenant: ConsoleTenant):
    async with console_client() as client:
        await signed_in(client, console_tenant.admin_key)
        token = await _csrf(client)
        page = await client.post("/events", data={
            "csrf": token, "eventId": "EVTnoScript", "label": "kept", "channel": "sms",
            "targeting": "event", "fields.0.id": "orderId", "fields.0.type": "integer",
            "add_field": "1"})
        assert page.status_code == 200
        assert 'value="EVTnoScript"' in page.text and 'value="orderId"' in page.text
        assert 'id="fields.1.id"' in page.text  # the new, empty row
        assert re.search(r'<option value="integer" selected>', page.text)
        assert (await console_tenant.admin.get("/events/EVTnoScript")).status_code == 404


async def test_without_javascript_the_audience_builder_adds_and_removes_rows(
        console_tenant: ConsoleTenant):
    async with console_client() as client:
        await signed_in(client, console_tenant.admin_key)
        token = await _csrf(client)
        one_row = {"csrf": token, "name": "no-script", "t.node": "group", "t.kind": "any",
                   "t.0.node": "row", "t.0.path": "city", "t.0.op": "in",
                   "t.0.value": "Atlanta, Seattle"}
        added = await client.post("/audiences/save", data={**one_row, "edit": "add-row:t"})
        assert added.status_code == 200
        assert 'value="remove:t.0"' in added.text and 'value="remove:t.1"' in added.text
        assert 'value="Atlanta, Seattle"' in added.text  # what was typed is kept
        removed = await client.post("/audiences/save", data={**one_row, "edit": "remove:t.0"})
        assert 'value="Atlanta, Seattle"' not in removed.text
        audiences = (await console_tenant.admin.get("/audiences")).json()
        assert not any(a["name"] == "no-script" for a in audiences)  # nothing stored


async def test_journey_events_and_messages_are_made_in_the_console(
        console_tenant: ConsoleTenant):
    """What the journey seed needs besides the audience and the journey: JEVpurchase,
    identified by purchaseMessage == "thank you", and a journey message (JMS…), which
    takes the API's defaults (profile-based marketing) whatever the boxes say."""
    async with console_client() as client:
        await signed_in(client, console_tenant.admin_key)
        token = await _csrf(client)
        new = await client.get("/journey-events/new")
        skeleton = re.search(r'<textarea id="definition"[^>]*>([^<]*)</textarea>', new.text)
        assert skeleton and "purchaseMessage" in html.unescape(skeleton.group(1))
        broken = await client.post("/journey-events", data={
            "csrf": token, "creating": "1", "eventId": "JEVpurchase",
            "definition": '{"fields": [], "condition": {"path": "event.nope", "op": "eq",'
                          ' "value": 1}}'})
        assert broken.status_code == 422 and "Not saved" in broken.text
        saved = await client.post("/journey-events", data={
            "csrf": token, "creating": "1", "eventId": "JEVpurchase",
            "definition": html.unescape(skeleton.group(1))})
        assert saved.status_code == 303
        stored = (await console_tenant.admin.get("/journey-events/JEVpurchase")).json()
        assert stored["definition"]["condition"]["value"] == "thank you"
        listed = await client.get("/journey-events")
        assert "event.purchaseMessage eq thank you" in listed.text

        message = await client.post("/events", data={
            "csrf": token, "eventId": "JMSthanks", "label": "thanks", "channel": "push",
            "targeting": "event"})  # an unticked marketing box, an event targeting
        assert message.status_code == 303, message.text
        config = (await console_tenant.admin.get("/events/JMSthanks")).json()["config"]
        assert config["marketing"] is True and config["targeting"] == "profile"
