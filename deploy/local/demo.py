"""The seed scenarios end to end on the local stack (``make demo``): S1, the
cart-abandonment transactional email (below), then S2, the seed journey
(``demo_journey.py``).

0. the CRM imports the customers through the profile API's import (a profiles key); 1.
configure and publish the event ``EVTcartAbandonment`` with its
email; 3. the website posts events; 4. print the statuses and the emails that arrived
at the SMTP server.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import demo_journey  # beside this script (S2)

from shared.adapters.key_store import create_key
from shared.adapters.postgres import create_pool
from shared.domain.api_keys import Scope
from shared.domain.status import TERMINAL
from shared.settings import get_settings

settings = get_settings()
GATEWAY = f"http://127.0.0.1:{settings.gateway_port}"
SINK = f"http://127.0.0.1:{settings.smtp_sink_http_port}"
TENANT = "default"

# The customers, as a CRM exports them: a CSV file with the profile API's names.
CUSTOMERS_CSV = """profileId,email,firstName,city
p-ada,ada@example.com,Ada,Seattle
p-grace,grace@example.com,Grace,Atlanta
"""

EVENT_ID = "EVTcartAbandonment"
ADMIN = f"http://127.0.0.1:{settings.admin_port}/admin/v1"
SAMPLE_CART = {"cartUrl": "https://shop.example.com/cart", "cartTotal": 42,
               "products": [{"name": "Sample mug", "price": 42}]}
CART_ABANDONMENT = {
    "eventId": EVENT_ID,
    "label": "Cart abandonment",
    "channel": "email",
    "targeting": "profile",
    "fields": [{"id": "cartUrl", "type": "string", "required": True},
               {"id": "cartTotal", "type": "decimal"}],
    "collections": [{"id": "products", "fields": [
        {"id": "name", "type": "string", "required": True},
        {"id": "price", "type": "decimal"}]}],
}

TEMPLATE = {
    "subject": "{{ profile.first_name }}, you left {{ ctx.products|length }}"
               " item{{ 's' if ctx.products|length != 1 }} in your cart",
    "html": "<p>Hello {{ profile.first_name }},</p><ul>{% for p in ctx.products %}"
            "<li>{{ p.name }}: ${{ p.price }}</li>{% endfor %}</ul>"
            "<p><a href=\"{{ ctx.cartUrl }}\">Back to your cart</a>"
            " (total ${{ ctx.cartTotal }})</p>",
    "text": "Hello {{ profile.first_name }},\n{% for p in ctx.products %}- {{ p.name }}: "
            "${{ p.price }}\n{% endfor %}Back to your cart: {{ ctx.cartUrl }}\n",
}


def step(number: int, text: str) -> None:
    print(f"\n== step {number}: {text}")


async def seed() -> tuple[str, str, str]:
    """Three keys: the administrator's, the website's and the CRM's (profiles)."""
    pool = await create_pool(settings.pg_dsn)
    try:
        async with pool.acquire() as connection:
            admin_key = await create_key(connection, TENANT, Scope.ADMIN, "demo admin")
            ingest_key = await create_key(connection, TENANT, Scope.INGEST, "demo website")
            profiles_key = await create_key(connection, TENANT, Scope.PROFILES, "demo crm")
        return admin_key, ingest_key, profiles_key
    finally:
        await pool.close()


def import_customers(profiles_key: str) -> None:
    """Step 0, the CRM: the customers through POST /v1/profiles/import. A key just created
    reaches the gateway within a moment (NOTIFY), so a 401 is retried for up to 10 s."""
    deadline = time.monotonic() + 10
    while True:
        response = httpx.post(f"{GATEWAY}/v1/profiles/import", content=CUSTOMERS_CSV,
                              timeout=30, headers={"authorization": f"Bearer {profiles_key}",
                                                   "content-type": "text/csv"})
        if response.status_code != 401 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if response.is_error:
        raise SystemExit(f"POST /v1/profiles/import -> {response.status_code}: {response.text}")
    summary = json.loads(response.text.partition("\n")[0])["summary"]
    print(f"  POST /v1/profiles/import (CSV, {summary['read']} rows): inserted"
          f" {summary['inserted']}, updated {summary['updated']}, unchanged"
          f" {summary['unchanged']}, rejected {summary['rejected']}")
    if summary["rejected"]:
        raise SystemExit(f"rows were rejected: {response.text}")


def call(admin: httpx.Client, method: str, path: str, **body: object) -> dict[str, Any]:
    response = admin.request(method, path, **body)  # type: ignore[arg-type]
    if response.is_error:
        raise SystemExit(f"{method} {path} -> {response.status_code}: {response.text}")
    return response.json() if response.content else {}


def configure_and_publish(admin: httpx.Client) -> None:
    """Step 1, the administrator. A previous run's event is unpublished and deleted first."""
    existing = admin.get(f"/events/{EVENT_ID}")
    if existing.status_code == 200:
        if existing.json()["state"] == "published":
            call(admin, "POST", f"/events/{EVENT_ID}/unpublish")
        call(admin, "DELETE", f"/events/{EVENT_ID}")
    call(admin, "POST", "/events", json=CART_ABANDONMENT)
    published = call(admin, "POST", f"/events/{EVENT_ID}/publish")
    print(f"  {EVENT_ID} is {published['state']}: POST {GATEWAY}{published['endpoint']}")
    message = call(admin, "GET", f"/events/{EVENT_ID}/message")
    print(f"  its message was created: version {message['versions'][0]['version']},"
          f" {message['versions'][0]['state']}, default template")


def edit_preview_publish(admin: httpx.Client) -> None:
    """Step 2, the marketer, with a test profile that carries sample cart data."""
    call(admin, "PUT", "/test-profiles/test-tess", json={
        "email": "tess@example.com", "firstName": "Tess", "sampleCtx": SAMPLE_CART})
    call(admin, "PUT", f"/events/{EVENT_ID}/message", json=TEMPLATE)
    preview = call(admin, "POST", f"/events/{EVENT_ID}/message/preview",
                   json={"profileId": "test-tess"})
    print(f"  preview for test profile Tess: subject {preview['parts']['subject']!r}")
    print("    " + preview["parts"]["text"].strip().replace("\n", "\n    "))
    proof = call(admin, "POST", f"/events/{EVENT_ID}/message/proof",
                 json={"profileId": "test-tess"})
    arrived = httpx.get(f"{SINK}/messages", params={"to": proof["sentTo"]}).json()
    print(f"  proof sent to {proof['sentTo']}; the SMTP server has it:"
          f" {arrived[-1]['subject']!r}" if arrived else "  the proof did not arrive")
    published = call(admin, "POST", f"/events/{EVENT_ID}/message/publish")
    version = published["versions"][0]
    print(f"  message version {version['version']} is {version['state']}")


def post_events(client: httpx.Client) -> list[tuple[str, str]]:
    carts = [
        ("ada@example.com", [{"name": "Trail shoes", "price": 89.9}]),
        ("grace@example.com", [{"name": "Rain jacket", "price": 120},
                               {"name": "Wool socks", "price": 12.5}]),
        ("nobody@example.com", [{"name": "Umbrella", "price": 19}]),
    ]
    accepted = []
    for email, products in carts:
        body = {"email": email, "ctx": {
            "cartUrl": "https://shop.example.com/cart", "products": products,
            "cartTotal": round(sum(p["price"] for p in products), 2)}}
        response = client.post(f"{GATEWAY}/v1/events/EVTcartAbandonment", json=body)
        response.raise_for_status()
        print(f"  POST {email:<20} -> {response.status_code} {response.json()}")
        accepted.append((email, response.json()["href"]))
    return accepted


def wait_for_statuses(client: httpx.Client, accepted: list[tuple[str, str]]) -> dict[str, dict]:
    deadline = time.monotonic() + 30
    shown = -1
    while True:
        statuses = {email: client.get(GATEWAY + href).json() for email, href in accepted}
        done = sum(s["status"] in TERMINAL for s in statuses.values())
        if done != shown:
            print(f"  {done}/{len(accepted)} events reached a final status", flush=True)
            shown = done
        if done == len(accepted) or time.monotonic() > deadline:
            return statuses
        time.sleep(0.2)


def main() -> int:
    admin_key, key, profiles_key = asyncio.run(seed())
    httpx.delete(f"{SINK}/messages")
    step(0, "the CRM imports the customers (profiles key, the profile API's import)")
    import_customers(profiles_key)
    with httpx.Client(base_url=ADMIN, timeout=10,
                      headers={"authorization": f"Bearer {admin_key}"}) as admin:
        step(1, "the administrator configures and publishes the cart-abandonment event")
        configure_and_publish(admin)
        step(2, "the marketer edits the message, previews it and sends a proof to a test"
                " profile, publishes it")
        edit_preview_publish(admin)
    with httpx.Client(timeout=10, headers={"authorization": f"Bearer {key}"}) as client:
        client.delete(f"{SINK}/messages")
        step(3, "the website posts three cart abandonments (ingestion key)")
        started = time.monotonic()
        accepted = post_events(client)
        step(4, "delivery: statuses, and the emails the SMTP server received")
        statuses = wait_for_statuses(client, accepted)
        print(f"  {'email':<22}{'status':<18}reason")
        for email, status in statuses.items():
            print(f"  {email:<22}{status['status']:<18}{status.get('reason') or ''}")
        messages = client.get(f"{SINK}/messages").json()
        for message in messages:
            print(f"  to {', '.join(message['rcpt_to']):<20} subject: {message['subject']}")
        if messages:
            print("\n  first email, text part:\n    " + messages[0]["text"].replace("\n", "\n    "))
        print(f"\n  {len(messages)} emails in {time.monotonic() - started:.2f}s")
    expected = {"ada@example.com": "processed", "grace@example.com": "processed",
                "nobody@example.com": "targetingFailed"}
    ok = all(statuses[e]["status"] == s for e, s in expected.items()) and len(messages) == 2
    if not ok:
        print("\ndemo FAILED (S1): see `make status` and .run/logs/")
        return 1
    print("\nS1 OK; S2, the seed journey:")
    journey_admin_key = demo_journey.main()  # raises SystemExit saying what failed
    console = f"http://127.0.0.1:{settings.console_port}"
    print(f"\nThe console, {console}: sign in with an admin key to see it all in a browser")
    print(f"  tenant {TENANT} (S1, EVTcartAbandonment and its message): {admin_key}")
    print(f"  tenant {demo_journey.TENANT} (S2, the seed journey with its counts): "
          f"{journey_admin_key}")
    print("\ndemo OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
