"""The cart-abandonment scenario end to end on the local stack (``make demo``).

1. seed profiles; 2. configure and publish the event ``EVTcartAbandonment`` with its
email; 3. the website posts events; 4. print the statuses and the emails that arrived
at the SMTP server.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shared.adapters.catalog_store import save_event
from shared.adapters.key_store import create_key
from shared.adapters.postgres import create_pool
from shared.adapters.profile_store import upsert_profiles
from shared.domain.api_keys import Scope
from shared.domain.events import EventConfig
from shared.domain.status import TERMINAL
from shared.settings import get_settings

settings = get_settings()
GATEWAY = f"http://127.0.0.1:{settings.gateway_port}"
SINK = f"http://127.0.0.1:{settings.smtp_sink_http_port}"
TENANT = "default"

PROFILES = [
    {"profile_id": "p-ada", "email": "ada@example.com", "first_name": "Ada", "city": "Seattle"},
    {"profile_id": "p-grace", "email": "grace@example.com", "first_name": "Grace",
     "city": "Atlanta"},
]

CART_ABANDONMENT = EventConfig.model_validate({
    "event_id": "EVTcartAbandonment",
    "label": "Cart abandonment",
    "channel": "email",
    "targeting": "profile",
    "fields": [{"id": "cartUrl", "type": "string", "required": True},
               {"id": "cartTotal", "type": "decimal"}],
    "collections": [{"id": "products", "fields": [
        {"id": "name", "type": "string", "required": True},
        {"id": "price", "type": "decimal"}]}],
})

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


async def configure() -> str:
    """Seed, publish, and return an ingestion key for the website."""
    pool = await create_pool(settings.pg_dsn)
    try:
        async with pool.acquire() as connection:
            await upsert_profiles(connection, TENANT, PROFILES)
            key = await create_key(connection, TENANT, Scope.INGEST, "demo website")
        await save_event(pool, TENANT, CART_ABANDONMENT, TEMPLATE)
        return key
    finally:
        await pool.close()


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
    step(1, "seed profiles, configure and publish EVTcartAbandonment (email, profile-based)")
    key = asyncio.run(configure())
    print(f"  {len(PROFILES)} profiles; endpoint POST {GATEWAY}/v1/events/EVTcartAbandonment")
    print(f"  the website's ingestion key: {key[:24]}…")
    with httpx.Client(timeout=10, headers={"authorization": f"Bearer {key}"}) as client:
        client.delete(f"{SINK}/messages")
        step(2, "the website posts three cart abandonments")
        started = time.monotonic()
        accepted = post_events(client)
        step(3, "statuses")
        statuses = wait_for_statuses(client, accepted)
        print(f"  {'email':<22}{'status':<18}reason")
        for email, status in statuses.items():
            print(f"  {email:<22}{status['status']:<18}{status.get('reason') or ''}")
        step(4, "emails received by the SMTP server")
        messages = client.get(f"{SINK}/messages").json()
        for message in messages:
            print(f"  to {', '.join(message['rcpt_to']):<20} subject: {message['subject']}")
        if messages:
            print("\n  first email, text part:\n    " + messages[0]["text"].replace("\n", "\n    "))
        print(f"\n  {len(messages)} emails in {time.monotonic() - started:.2f}s")
    expected = {"ada@example.com": "processed", "grace@example.com": "processed",
                "nobody@example.com": "targetingFailed"}
    ok = all(statuses[e]["status"] == s for e, s in expected.items()) and len(messages) == 2
    print("\ndemo OK" if ok else "\ndemo FAILED: see `make status` and .run/logs/")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
