"""S2, the seed journey (``make demo``, after S1), through the real services in a tenant of
its own (``demo-journeys``):

5. the marketer authors it: an audience (Atlanta, San Francisco or Seattle, born after
   1980), four journey messages (JMS…), the journey event ``JEVpurchase`` (identified by
   ``purchaseMessage == "thank you"``), the journey; validates it;
6. runs it in test mode on four test profiles with a compressed day, simulating an email
   open, a push open and a purchase through the admin API, and reads a test profile's
   step-by-step log;
7. publishes it — with the day compressed to DAY_S seconds, a demo setting of the local
   stack (PARCOURS_JOURNEYS_COMPRESSED_TIME) — for customers of whom two are decoys; one
   opens the email through its tracking pixel, one the push through the app's endpoint;
   after the day the others get the reminder; purchases arrive through the gateway, one of
   them not a "thank you"; only the matching customers get the thank-you push;
8. prints the per-node counts (``parcours journeys show``) and checks them against what
   it generated.

A run publishes a new version of the journey (the previous run's is stopped first), so
its counts are its own.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shared.adapters.key_store import create_key, create_tenant
from shared.adapters.postgres import create_pool
from shared.domain.api_keys import Scope
from shared.settings import get_settings

settings = get_settings()
GATEWAY = f"http://127.0.0.1:{settings.gateway_port}"
ADMIN = f"http://127.0.0.1:{settings.admin_port}/admin/v1"
BULK_SINK = f"http://127.0.0.1:{settings.smtp_bulk_sink_http_port}"
PROVIDER = f"http://127.0.0.1:{settings.provider_sink_port}"
TENANT = "demo-journeys"
ROOT = Path(__file__).resolve().parents[2]
DAY_S = 20  # the demo's day, in seconds
SPEED = 86_400 / DAY_S
BROWSER = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/120.0 Safari/537.36")
T = TypeVar("T")

AUDIENCE = {"all": [
    {"path": "city", "op": "in", "value": ["Atlanta", "San Francisco", "Seattle"]},
    {"path": "birthDate", "part": "year", "op": "gt", "value": 1980}]}
EMAIL = {"subject": "{{ profile.first_name }}, {{ 'our news' }}",
         "html": "<html><body><p>Hello {{ profile.first_name }},</p><p>Our new collection"
                 ' is out: <a href="https://shop.example.com/new">have a look</a>.</p>'
                 "</body></html>",
         "text": "Hello {{ profile.first_name }}, our new collection is out."}
MESSAGES = {  # node -> (journey message, channel, template)
    "mail": ("JMSwelcome", "email", EMAIL),
    "push": ("JMSwelcomePush", "push", {"title": "New collection",
                                        "body": "{{ profile.first_name }}, have a look"}),
    "reminder": ("JMSreminder", "email", {
        **EMAIL, "subject": "{{ profile.first_name }}, did you see our news?"}),
    "thanks": ("JMSthanks", "push", {"title": "Thank you!",
                                     "body": "{{ profile.first_name }}, thanks for your order"}),
}
PURCHASE = {"fields": [{"id": "customerId", "type": "string", "required": True},
                       {"id": "purchaseMessage", "type": "string"},
                       {"id": "amount", "type": "decimal"}],
            "condition": {"path": "event.purchaseMessage", "op": "eq", "value": "thank you"},
            "profileKey": "customerId"}
JOURNEY = {
    "id": "seed", "name": "New collection (the seed journey)",
    "entry": {"type": "audience", "audienceId": "", "next": "mail"},
    "nodes": [
        {"id": "mail", "type": "email", "message": "JMSwelcome", "next": "push"},
        {"id": "push", "type": "push", "message": "JMSwelcomePush", "next": "react"},
        {"id": "react", "type": "listen",
         "branches": [{"reaction": {"action": "mail", "kind": "opened"}, "next": "buy"},
                      {"reaction": {"action": "push", "kind": "pushOpened"}, "next": "buy"}],
         "timeout": {"after": "P1D", "next": "reminder"}},
        {"id": "reminder", "type": "email", "message": "JMSreminder", "next": "buy"},
        {"id": "buy", "type": "listen",
         "branches": [{"event": {"eventId": "JEVpurchase", "when": {
             "path": "event.purchaseMessage", "op": "eq", "value": "thank you"}},
             "next": "thanks"}],
         "timeout": {"after": "P30D"}},
        {"id": "thanks", "type": "push", "message": "JMSthanks", "next": "done"},
        {"id": "done", "type": "end"}]}
# (profile id, first name, city, birth date); the last two are decoys.
CUSTOMERS = [("c-amy", "Amy", "Atlanta", "1985-04-02"),
             ("c-ben", "Ben", "San Francisco", "1990-07-15"),
             ("c-cat", "Cat", "Seattle", "1982-11-30"),
             ("c-dan", "Dan", "Atlanta", "1999-01-20"),
             ("c-eve", "Eve", "Seattle", "1988-03-03"),
             ("c-fay", "Fay", "San Francisco", "1995-09-09"),
             ("c-gus", "Gus", "Boston", "1990-01-01"),  # not in the cities
             ("c-hal", "Hal", "Seattle", "1975-05-05")]  # born before 1981
MEMBERS = [c[0] for c in CUSTOMERS[:6]]
TESTERS = ["test-ann", "test-bob", "test-cy", "test-dee"]


def step(number: int, text: str) -> None:
    print(f"\n== step {number}: {text}", flush=True)


def until(probe: Callable[[], T | None], what: str, deadline_s: float) -> T:
    """Poll ``probe`` until it answers, or fail saying what did not happen."""
    end = time.monotonic() + deadline_s
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > end:
            raise SystemExit(f"demo FAILED: {what} did not happen within {deadline_s:g} s;"
                             " see `make status` and .run/logs/journeys.log")
        time.sleep(0.2)


def call(client: httpx.Client, method: str, path: str, **body: Any) -> Any:
    response = client.request(method, path, **body)
    if response.is_error:
        raise SystemExit(f"{method} {path} -> {response.status_code}: {response.text}")
    return response.json() if response.content else {}


async def _keys() -> dict[Scope, str]:
    pool = await create_pool(settings.pg_dsn)
    try:
        async with pool.acquire() as connection:
            await create_tenant(connection, TENANT, "the journey demo")
            return {scope: await create_key(connection, TENANT, scope, "journey demo")
                    for scope in (Scope.ADMIN, Scope.INGEST, Scope.PROFILES)}
    finally:
        await pool.close()


def author(admin: httpx.Client) -> str:
    """Step 5: the audience, the messages, the journey event type, the journey."""
    audiences = {a["name"]: a for a in call(admin, "GET", "/audiences")}
    if "atl-sf-sea" in audiences:
        audience_id = audiences["atl-sf-sea"]["audienceId"]
        call(admin, "PUT", f"/audiences/{audience_id}",
             json={"name": "atl-sf-sea", "definition": AUDIENCE})
    else:
        audience_id = call(admin, "POST", "/audiences", json={
            "name": "atl-sf-sea", "definition": AUDIENCE})["audienceId"]
    print(f"  audience {audience_id}: Atlanta, San Francisco or Seattle, born after 1980")
    for message, channel, template in MESSAGES.values():
        existing = admin.get(f"/events/{message}")
        if existing.status_code == 404:
            call(admin, "POST", "/events", json={
                "eventId": message, "label": f"journey message {message}", "channel": channel})
        if admin.get(f"/events/{message}").json()["state"] != "published":
            call(admin, "POST", f"/events/{message}/publish")
        call(admin, "PUT", f"/events/{message}/message", json=template)
        call(admin, "POST", f"/events/{message}/message/publish")
        print(f"  journey message {message} ({channel}) published")
    call(admin, "PUT", "/journey-events/JEVpurchase", json=PURCHASE)
    print('  journey event JEVpurchase: identified by purchaseMessage == "thank you",'
          " matched to its profile by customerId")
    journey = {**JOURNEY, "entry": {**JOURNEY["entry"], "audienceId": audience_id}}
    if admin.get("/journeys/seed/versions").status_code == 200:
        for mode in ("stop", "test/stop"):
            admin.post(f"/journeys/seed/{mode}")  # the previous run's, if still running
    call(admin, "PUT", "/journeys/seed", json=journey)
    checked = call(admin, "POST", "/journeys/seed/validate")
    print(f"  journey seed validated: publishable {checked['publishable']}")
    for problem in checked.get("problems", []):
        print(f"    {problem['severity']:<8}{problem['node']:<10}{problem['message']}")
    return audience_id


def test_run(admin: httpx.Client) -> None:
    """Step 6: test mode on test profiles, a compressed day, simulated reactions."""
    for profile_id in TESTERS:
        call(admin, "PUT", f"/test-profiles/{profile_id}", json={
            "email": f"{profile_id}@example.com", "firstName": profile_id.split("-")[1],
            "pushRegistrations": [{"registrationToken": f"demo-{profile_id}",
                                   "application": "shop", "pushPlatform": "fcm"}]})
    version = call(admin, "POST", "/journeys/seed/test",
                   json={"profiles": TESTERS, "speed": SPEED})["version"]
    print(f"  test run: version {version}, {len(TESTERS)} test profiles, a day in {DAY_S} s")

    def waiting_at(profile_id: str, node: str) -> bool:
        found = admin.get(f"/journeys/seed/instances/{profile_id}").json()
        return any(i["version"] == version and i["node"] == node and i["state"] == "waiting"
                   for i in found.get("instances", []))

    for profile_id in TESTERS:
        until(lambda p=profile_id: waiting_at(p, "react"), f"{profile_id} at react", 30)
    call(admin, "POST", "/journeys/seed/test/reactions",
         json={"profileId": "test-ann", "node": "mail", "kind": "opened"})
    call(admin, "POST", "/journeys/seed/test/reactions",
         json={"profileId": "test-bob", "node": "push", "kind": "pushOpened"})
    print("  simulated: test-ann opened the email, test-bob the push")
    for profile_id in TESTERS:
        until(lambda p=profile_id: waiting_at(p, "buy"), f"{profile_id} at buy", DAY_S + 30)
    for profile_id in ("test-ann", "test-cy"):
        call(admin, "POST", "/journeys/seed/test/events", json={
            "profileId": profile_id, "eventId": "JEVpurchase",
            "payload": {"customerId": profile_id, "purchaseMessage": "thank you",
                        "amount": 25}})
    print("  simulated: test-ann and test-cy bought (\"thank you\")")
    counts = until(lambda: _finished(admin, version, 2), "two test profiles finishing", 30)
    history = call(admin, "GET", "/journeys/seed/instances/test-ann")
    print("  test-ann's step-by-step log:")
    for instance in history["instances"]:
        if instance["version"] == version:
            for s in instance["steps"]:
                print(f"    {s['at'][11:23]}  {s['node']:<9}{s['kind']:<14}{s['detail']}")
    _check(counts, {"react": {"reaction": 2, "timedOut": 2}, "reminder": {"actionSent": 2},
                    "buy": {"event": 2, "waiting": 2}, "thanks": {"actionSent": 2},
                    "done": {"exited": 2}}, "test run")
    call(admin, "POST", "/journeys/seed/test/stop")


def _finished(admin: httpx.Client, version: int, count: int) -> dict[str, Any] | None:
    counts = call(admin, "GET", "/journeys/seed/counts", params={"version": version})
    nodes = {n["node"]: n for n in counts["nodes"]}
    return nodes if nodes.get("done", {}).get("exited") == count else None


def _check(nodes: dict[str, Any], expected: dict[str, dict[str, int]], what: str) -> None:
    wrong = [f"{node}.{key} {nodes.get(node, {}).get(key)} (expected {value})"
             for node, keys in expected.items() for key, value in keys.items()
             if nodes.get(node, {}).get(key) != value]
    if wrong:
        raise SystemExit(f"demo FAILED: {what} counts: {'; '.join(wrong)}")
    print(f"  {what}: every count as generated")


def import_customers(profiles: httpx.Client) -> None:
    for profile_id, first, city, born in CUSTOMERS:
        call(profiles, "PUT", f"/v1/profiles/{profile_id}", json={
            "email": f"{first.lower()}@demo.example.com", "firstName": first, "city": city,
            "birthDate": born, "pushDevices": [{"registrationToken": f"demo-{profile_id}",
                                                "application": "shop",
                                                "pushPlatform": "fcm"}],
            "consent": {"email": {"marketing": "opted-in"},
                        "push": {"marketing": "opted-in"}}})
    print(f"  {len(CUSTOMERS)} customers written through the profile API, 2 of them decoys"
          " (Boston; born 1975)")


def mails(http: httpx.Client, profile_id: str) -> list[dict[str, Any]]:
    first = next(c[1] for c in CUSTOMERS if c[0] == profile_id)
    return http.get(f"{BULK_SINK}/messages",
                    params={"to": f"{first.lower()}@demo.example.com"}).json()


def pushes(http: httpx.Client, profile_id: str) -> list[dict[str, Any]]:
    return http.get(f"{PROVIDER}/messages",
                    params={"channel": "push", "to": f"demo-{profile_id}"}).json()


def live_run(admin: httpx.Client, ingest: httpx.Client, http: httpx.Client) -> int:
    """Step 7: published, for the customers; opens and purchases through the real APIs."""
    for sink in (BULK_SINK, PROVIDER):  # what an earlier run delivered, out of the count
        http.delete(f"{sink}/messages").raise_for_status()
    version = call(admin, "POST", "/journeys/seed/publish", json={"speed": SPEED})["version"]
    print(f"  published: version {version} (its day compressed to {DAY_S} s: a demo setting)")
    started = time.monotonic()
    until(lambda: all(len(mails(http, p)) == 1 and len(pushes(http, p)) == 1
                      for p in MEMBERS), "the first email and push to the six members", 30)
    print(f"  the 6 members got the email and the push in {time.monotonic() - started:.1f} s;"
          " the decoys nothing")
    # A person opens a while after it came (an open in the first seconds is a scanner's).
    time.sleep(2.5)  # the recipient reading it: the demo's pacing, not a wait for a result
    html = mails(http, "c-amy")[0]["html"]
    [pixel] = re.findall(r'src="([^"]+/o/[^"]+)"', html)
    http.get(pixel, headers={"User-Agent": BROWSER}).raise_for_status()
    push = pushes(http, "c-ben")[0]
    http.post(f"{GATEWAY}/v1/push/opened", json={
        "messageId": push["messageId"], "openToken": push["payload"]["data"]["openToken"]},
    ).raise_for_status()
    print("  Amy opened the email (its tracking pixel), Ben the push (the app's endpoint)")
    until(lambda: all(len(mails(http, p)) == 2 for p in ("c-cat", "c-dan", "c-eve", "c-fay")),
          "the reminder after the day", DAY_S + 30)
    print(f"  after the day ({DAY_S} s): the reminder to Cat, Dan, Eve and Fay; none to Amy"
          " or Ben")
    for profile_id, text in (("c-amy", "thank you"), ("c-cat", "thank you"),
                             ("c-dan", "not this time")):
        answer = call(ingest, "POST", "/v1/journey-events/JEVpurchase", json={
            "customerId": profile_id, "purchaseMessage": text, "amount": 42})
        print(f"  purchase {profile_id} {text!r:<16} -> accepted {answer['accepted']}"
              + (f" ({answer['reason']})" if not answer["accepted"] else ""))
    until(lambda: all(len(pushes(http, p)) == 2 for p in ("c-amy", "c-cat")),
          "the thank-you push", 30)
    print("  the thank-you push to Amy and Cat only")
    return version


def main() -> str:
    """S2 end to end; the tenant's admin key (for the console) when every count is right."""
    keys = asyncio.run(_keys())
    auth = {scope: {"authorization": f"Bearer {key}"} for scope, key in keys.items()}
    with httpx.Client(base_url=ADMIN, timeout=30, headers=auth[Scope.ADMIN]) as admin, \
            httpx.Client(base_url=GATEWAY, timeout=30, headers=auth[Scope.INGEST]) as ingest, \
            httpx.Client(base_url=GATEWAY, timeout=30, headers=auth[Scope.PROFILES]) as profiles, \
            httpx.Client(timeout=30) as http:
        until(lambda: admin.get("/journeys").status_code == 200, "the admin key known", 10)
        step(5, "the marketer authors the seed journey and validates it")
        author(admin)
        step(6, "test mode: four test profiles, a compressed day, simulated reactions")
        test_run(admin)
        step(7, "published for the customers: opens and purchases through the real APIs")
        until(lambda: profiles.get("/v1/profiles/none").status_code == 404,
              "the profiles key known", 10)
        import_customers(profiles)
        version = live_run(admin, ingest, http)
        step(8, "the per-node counts (parcours journeys show seed)")
        counts = until(lambda: _finished(admin, version, 2), "two customers finishing", 30)
        subprocess.run([sys.executable, "-m", "services.cli", "journeys", "show", "seed",
                        "--version", str(version)], cwd=ROOT, check=False,
                       env={**os.environ, "PARCOURS_ADMIN_KEY": keys[Scope.ADMIN]})
        _check(counts, {"entry": {"entered": 6}, "mail": {"actionSent": 6},
                        "push": {"actionSent": 6}, "react": {"reaction": 2, "timedOut": 4},
                        "reminder": {"actionSent": 4}, "buy": {"event": 2, "waiting": 4},
                        "thanks": {"actionSent": 2}, "done": {"exited": 2}}, "live run")
    return keys[Scope.ADMIN]  # the console's sign-in, printed by demo.py


if __name__ == "__main__":
    main()
