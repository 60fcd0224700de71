"""Each journey activity on the real stack (the engine in the local stack, time compressed
by the version's ``speed``): updateProfile writing built-in fields and custom attributes
(a value the schema refuses is an ``error`` step, the instance goes on), http calling a
receiver of our own (one call with its Idempotency-Key and the instance's data; a
receiver slower than the node's timeout is an ``httpFailed`` step), condition branching
on a profile field and on a resolved wait's event data (else when nothing holds), wait (a
duration; untilField on a profile date, a date gone going on at once), a listen whose
reaction and event branches race one timeout (one path each), joins, exit criteria,
early events (the early rule) and events for profiles not in the journey, and actions
excluded by a rule. Each test in a tenant of its own; every count read from
journey_steps, every effect from the real sinks, the profile API or the receiver."""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from services.journeys import backlog
from services.journeys.metrics import HELD, HELD_OLDEST
from shared.adapters.journey_store import DOCUMENT
from shared.domain.journeys.definition import SplitBranch
from shared.domain.journeys.holdout import held_out
from shared.domain.journeys.send_window import DAYS
from shared.domain.journeys.split import bucket, choose
from tests.integration import test_journey_engine
from tests.integration.conftest import (
    BULK_SINK,
    eventually,
    mails_to,
    provider_messages,
    settings,
    unique_email,
)
from tests.integration.test_journey_engine import BROWSER, TEMPLATES, Tenant, publish_version
from tests.integration.test_journey_messages import journey_message

tenant = test_journey_engine.tenant  # the fixture: a tenant of its own for each test

METRICS = f"http://127.0.0.1:{settings.journeys_metrics_port}/metrics"
COHORT = "Activities"  # the last name of every profile a test puts in its journey
HOUR = 3600  # speed: an hour of the definition lasts a second

ORDER = {"eventId": "JEVorder",
         "fields": [{"id": "customerId", "type": "string", "required": True},
                    {"id": "amount", "type": "decimal"}, {"id": "item", "type": "string"}],
         "profileKey": "customerId"}
OPT_OUT = {"eventId": "JEVoptOut",
           "fields": [{"id": "customerId", "type": "string", "required": True}],
           "profileKey": "customerId"}


# --- helpers ---------------------------------------------------------------------------------

async def declare(t: Tenant, attributes: dict[str, str]) -> None:
    declared = await t.admin.put("/profile-schema", json={"attributes": [
        {"name": name, "type": kind} for name, kind in attributes.items()]})
    assert declared.status_code == 200, declared.text


async def event_types(t: Tenant, *types: dict[str, Any]) -> None:
    for event_type in types:
        created = await t.admin.put(f"/journey-events/{event_type['eventId']}",
                                    json=event_type)
        assert created.status_code == 201, created.text


async def put_profile(t: Tenant, profile_id: str, body: dict[str, Any]) -> None:
    """A profile of the journey's audience (unless the body names another last name);
    retried while the gateway has not yet heard of a schema just declared."""
    body = {"lastName": COHORT, **body}

    async def written() -> httpx.Response | None:
        response = await t.profiles.put(f"/v1/profiles/{profile_id}", json=body)
        return response if response.status_code in (200, 201) else None
    await eventually(written, f"profile {profile_id} written", 10)


def person(profile_id: str, **extra: Any) -> dict[str, Any]:
    """A profile with an address and marketing consent on email."""
    return {"email": unique_email(profile_id), "firstName": profile_id,
            "consent": {"email": {"marketing": "opted-in"}}, **extra}


async def run(pool: asyncpg.Pool, t: Tenant, journey_id: str, first: str,
              nodes: list[dict[str, Any]], speed: float, exit: tuple[str, ...] = (),
              publishable: bool = True, goals: tuple[dict[str, Any], ...] = ()
              ) -> dict[str, Any]:
    """The journey (entry: the audience of last name COHORT) as a draft — its problems
    must be none unless ``publishable`` is False — then a live version at ``speed``."""
    audience = await t.admin.post("/audiences", json={
        "name": f"{journey_id}-cohort",
        "definition": {"path": "lastName", "op": "eq", "value": COHORT}})
    assert audience.status_code == 201, audience.text
    journey = {"id": journey_id,
               "entry": {"type": "audience", "audienceId": audience.json()["audienceId"],
                         "next": first},
               "nodes": nodes, "exit": [{"eventId": e} for e in exit], "goals": list(goals)}
    draft = await t.admin.put(f"/journeys/{journey_id}", json=journey)
    assert draft.status_code == 201, draft.text
    if publishable:
        assert draft.json()["publishable"], draft.json()["problems"]
    await publish_version(pool, t.name, journey, speed=speed)
    return journey


@dataclass(frozen=True)
class StepRow:
    node: str
    kind: str
    detail: str
    at: datetime


async def steps_of(pool: asyncpg.Pool, t: Tenant, journey_id: str, profile_id: str
                   ) -> list[StepRow]:
    rows = await pool.fetch(
        "SELECT node, kind, detail, at FROM journey_instance_steps WHERE tenant_id = $1"
        " AND journey_id = $2 AND profile_id = $3 ORDER BY id", t.name, journey_id,
        profile_id)
    return [StepRow(r["node"], r["kind"], r["detail"], r["at"]) for r in rows]


def kinds(steps: list[StepRow], *wanted: str) -> list[tuple[str, str]]:
    return [(s.node, s.kind) for s in steps if s.kind in wanted]


def only(steps: list[StepRow], node: str, kind: str) -> StepRow:
    found = [s for s in steps if (s.node, s.kind) == (node, kind)]
    assert len(found) == 1, (node, kind, steps)
    return found[0]


async def instance(pool: asyncpg.Pool, t: Tenant, journey_id: str, profile_id: str
                   ) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT instance_id, state, node, {DOCUMENT} FROM journey_instances i"
        " WHERE tenant_id = $1 AND journey_id = $2 AND profile_id = $3", t.name,
        journey_id, profile_id)


async def reaches(pool: asyncpg.Pool, t: Tenant, journey_id: str,
                  where: dict[str, tuple[str, str]], deadline_s: float = 20) -> None:
    """Every profile's instance in (state, node)."""
    async def there() -> bool:
        for profile_id, (state, node) in where.items():
            row = await instance(pool, t, journey_id, profile_id)
            if row is None or (row["state"], row["node"]) != (state, node):
                return False
        return True
    try:
        await eventually(there, f"instances at {where}", deadline_s)
    except AssertionError:
        now = {p: (await instance(pool, t, journey_id, p)) for p in where}
        raise AssertionError(f"instances not at {where}: "
                             f"{ {p: r and (r['state'], r['node']) for p, r in now.items()} }"
                             ) from None


async def post_event(t: Tenant, event_id: str, payload: dict[str, Any]) -> None:
    """Through the gateway; retried while its cache has not yet seen the type."""
    async def answered() -> httpx.Response | None:
        response = await t.ingest.post(f"/v1/journey-events/{event_id}",
                                       content=orjson.dumps(payload),
                                       headers={"content-type": "application/json"})
        return None if response.status_code == 404 else response
    response = await eventually(answered, f"the gateway knowing {event_id}", 10)
    assert response.status_code == 202 and response.json()["accepted"], response.text


async def inputs_total(http: httpx.AsyncClient, kind: str, outcome: str) -> float:
    text = (await http.get(METRICS)).text
    found = re.search(rf'^parcours_journey_inputs_total\{{kind="{kind}",outcome="{outcome}"'
                      rf'\}} ([0-9.e+]+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def timers_of(pool: asyncpg.Pool, t: Tenant) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM journey_timers WHERE tenant_id = $1", t.name)
    return count


# --- updateProfile ----------------------------------------------------------------------------

async def test_update_profile_writes_fields_and_attributes_and_a_misfit_is_an_error_step(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    await declare(tenant, {"tier": "string", "orders": "integer"})
    await put_profile(tenant, "u1", person("u1", city="Paris",
                                           attributes={"tier": "bronze", "orders": 3}))
    await run(pool, tenant, "upd", "promote", [
        {"id": "promote", "type": "updateProfile",
         "set": {"city": "Lyon", "attributes": {"tier": "gold"}}, "next": "misfit"},
        {"id": "misfit", "type": "updateProfile",
         "set": {"attributes": {"orders": "many"}}, "next": "done"},
        {"id": "done", "type": "end"}], speed=HOUR)

    async def applied() -> list[StepRow] | None:
        steps = await steps_of(pool, tenant, "upd", "u1")
        return steps if kinds(steps, "profileUpdated", "error") and len(
            kinds(steps, "profileUpdated", "error")) == 2 else None
    steps = await eventually(applied, "both updates applied", 20)
    assert only(steps, "promote", "profileUpdated").detail == "updated"
    error = only(steps, "misfit", "error")
    assert error.detail.startswith("the update does not fit the profile schema")
    assert "orders" in error.detail, error.detail
    # The instance went on past the refused update and finished.
    assert kinds(steps, "finished") == [("done", "finished")]
    row = await instance(pool, tenant, "upd", "u1")
    assert row is not None and (row["state"], row["node"]) == ("finished", "done")

    profile = (await tenant.profiles.get("/v1/profiles/u1")).json()
    assert profile["city"] == "Lyon" and profile["firstName"] == "u1"
    assert profile["attributes"] == {"tier": "gold", "orders": 3}  # the misfit not written


# --- http ---------------------------------------------------------------------------------------

@dataclass
class Receiver:
    port: int = 0
    calls: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, path: str) -> list[tuple[str, dict[str, str], bytes]]:
        return [c for c in self.calls if c[0] == path]

    async def handle(self, request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.calls.append((request.path, headers, await request.read()))
        if request.path == "/slow":
            await asyncio.sleep(5)
        return web.Response(text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    yield state
    await runner.cleanup()


async def allow(t: Tenant, receiver: Receiver) -> None:
    """The receiver on the tenant's allow-list for http actions."""
    hosts = await t.admin.put("/journey-http-hosts",
                              json={"hosts": [f"127.0.0.1:{receiver.port}"]})
    assert hosts.status_code == 200, hosts.text


async def test_http_calls_once_with_the_instance_data_and_a_slow_receiver_fails_the_step(
        pool: asyncpg.Pool, tenant: Tenant, receiver: Receiver) -> None:
    await event_types(tenant, ORDER)
    await put_profile(tenant, "h1", person("h1"))
    await allow(tenant, receiver)
    await run(pool, tenant, "call", "order", [
        {"id": "order", "type": "listen",
         "branches": [{"event": {"eventId": "JEVorder"}, "next": "notify"}]},
        {"id": "notify", "type": "http", "url": receiver.url("/hook"), "timeoutMs": 3000,
         "next": "slow"},
        {"id": "slow", "type": "http", "method": "PUT", "url": receiver.url("/slow"),
         "timeoutMs": 300, "next": "done"},
        {"id": "done", "type": "end"}], speed=HOUR)
    await reaches(pool, tenant, "call", {"h1": ("waiting", "order")})
    await post_event(tenant, "JEVorder", {"customerId": "h1", "amount": 42.5, "item": "lamp"})

    async def called() -> list[StepRow] | None:
        steps = await steps_of(pool, tenant, "call", "h1")
        return steps if len(kinds(steps, "httpCalled", "httpFailed")) == 2 else None
    steps = await eventually(called, "both calls made", 20)
    assert only(steps, "notify", "httpCalled").detail == "HTTP 200"
    assert only(steps, "slow", "httpFailed").detail == "no answer within 0.3 s"
    assert kinds(steps, "finished") == [("done", "finished")]

    [(_, headers, body)] = receiver.to("/hook")
    [(_, slow_headers, _)] = receiver.to("/slow")
    key = headers["idempotency-key"]
    assert uuid.UUID(key) and key != slow_headers["idempotency-key"]
    assert orjson.loads(body) == {
        "journeyId": "call", "version": 1, "node": "notify", "profileId": "h1",
        "waits": {"order": {"customerId": "h1", "amount": "42.5", "item": "lamp"}}}
    # Applied once: nothing left in the outbox for the recovery loop to call again.
    assert await pool.fetchval("SELECT count(*) FROM journey_outbox WHERE tenant_id = $1",
                               tenant.name) == 0
    assert len(receiver.to("/hook")) == 1


# --- condition ----------------------------------------------------------------------------------

async def test_condition_branches_on_the_profile_and_on_a_resolved_wait_else_otherwise(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    await declare(tenant, {"tier": "string"})
    await event_types(tenant, ORDER)
    buys = {"c-gold": ("gold", "5", "chair"), "c-big": ("silver", "500.10", "chair"),
            "c-lamp": ("silver", "5", "lamp"), "c-small": ("silver", "5", "chair"),
            "c-none": ("silver", None, None)}
    for profile_id, (tier, _, _) in buys.items():
        await put_profile(tenant, profile_id, person(profile_id, attributes={"tier": tier}))
    await run(pool, tenant, "branch", "order", [
        {"id": "order", "type": "listen",
         "branches": [{"event": {"eventId": "JEVorder"}, "next": "check"}],
         "timeout": {"after": "PT8H", "next": "check"}},
        {"id": "check", "type": "condition", "branches": [
            {"when": {"path": "attributes.tier", "op": "eq", "value": "gold"}, "next": "gold"},
            {"when": {"path": "waits.order.amount", "op": "gt", "value": 100}, "next": "big"},
            {"when": {"path": "waits.order.item", "op": "eq", "value": "lamp"},
             "next": "lamp"}], "else": "other"},
        {"id": "gold", "type": "end"}, {"id": "big", "type": "end"},
        {"id": "lamp", "type": "end"}, {"id": "other", "type": "end"}], speed=HOUR)
    await reaches(pool, tenant, "branch", {p: ("waiting", "order") for p in buys})
    for profile_id, (_, amount, item) in buys.items():
        if amount is not None:
            await post_event(tenant, "JEVorder", {"customerId": profile_id,
                                                  "amount": amount, "item": item})
    expected = {"c-gold": "gold", "c-big": "big", "c-lamp": "lamp", "c-small": "other"}
    await reaches(pool, tenant, "branch", {p: ("finished", n) for p, n in expected.items()})
    # The one who bought nothing times out into the condition: no wait data, so else.
    await reaches(pool, tenant, "branch", {"c-none": ("finished", "other")}, 20)
    for profile_id in buys:
        steps = await steps_of(pool, tenant, "branch", profile_id)
        resolved = kinds(steps, "event", "timedOut")
        assert resolved == [("order", "timedOut" if profile_id == "c-none" else "event")]
        assert not kinds(steps, "error"), steps


# --- wait ---------------------------------------------------------------------------------------

async def test_a_duration_wait_lasts_its_compressed_time_never_less(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    await put_profile(tenant, "w1", person("w1"))
    await run(pool, tenant, "pause", "w", [
        {"id": "w", "type": "wait", "duration": "PT2H", "next": "done"},
        {"id": "done", "type": "end"}], speed=HOUR)
    await reaches(pool, tenant, "pause", {"w1": ("waiting", "w")})
    await reaches(pool, tenant, "pause", {"w1": ("finished", "done")}, 15)
    steps = await steps_of(pool, tenant, "pause", "w1")
    waited = (only(steps, "done", "entered").at - only(steps, "w", "entered").at)
    assert timedelta(seconds=2) <= waited < timedelta(seconds=3), waited


async def test_a_wait_until_a_profile_date_and_a_date_gone_goes_on_at_once(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    day = 4.0  # seconds: the speed makes a day last this long
    await declare(tenant, {"renewal": "date", "renewsAt": "datetime"})
    now = datetime.now(UTC)
    yesterday, tomorrow = (now - timedelta(days=1)).date(), (now + timedelta(days=1)).date()
    await put_profile(tenant, "d-at", person("d-at", attributes={
        "renewal": yesterday.isoformat(), "renewsAt": (now + timedelta(hours=12)).isoformat()}))
    await put_profile(tenant, "d-day", person("d-day", attributes={
        "renewal": tomorrow.isoformat(), "renewsAt": (now - timedelta(hours=1)).isoformat()}))
    await put_profile(tenant, "d-none", person("d-none"))
    await run(pool, tenant, "renew", "byDate", [
        {"id": "byDate", "type": "wait", "untilField": "attributes.renewal", "next": "byTime"},
        {"id": "byTime", "type": "wait", "untilField": "attributes.renewsAt", "next": "done"},
        {"id": "done", "type": "end"}], speed=86_400 / day)
    people = ("d-at", "d-day", "d-none")
    await reaches(pool, tenant, "renew", {p: ("finished", "done") for p in people}, 20)
    steps = {p: await steps_of(pool, tenant, "renew", p) for p in people}

    def waited(profile_id: str, node: str, after: str) -> float:
        s = steps[profile_id]
        return (only(s, after, "entered").at - only(s, node, "entered").at).total_seconds()

    # No date, or a date gone: on at once, in the move that entered the wait.
    assert waited("d-none", "byDate", "done") == 0
    assert waited("d-at", "byDate", "byTime") == 0
    assert waited("d-day", "byTime", "done") == 0
    # A datetime 12 hours ahead: half a compressed day.
    assert 0.45 * day <= waited("d-at", "byTime", "done") < 0.5 * day + 1
    # A date: its midnight (UTC), compressed.
    entered = only(steps["d-day"], "byDate", "entered").at
    due = (datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC) - entered
           ).total_seconds() * day / 86_400
    assert due - 0.01 <= waited("d-day", "byDate", "byTime") < due + 1, due


# --- listen: a reaction branch and an event branch racing one timeout ---------------------------

async def test_reaction_and_event_branches_race_one_timeout_one_path_each(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    await journey_message(tenant.admin, "JMSrace", "email", TEMPLATES["email"])
    await event_types(tenant, ORDER)
    emails = {p: unique_email(p) for p in ("r-open", "r-buy", "r-idle", "r-both")}
    for profile_id, email in emails.items():
        await put_profile(tenant, profile_id, person(profile_id, email=email))
    timeout_s = 20
    await run(pool, tenant, "race", "mail", [
        {"id": "mail", "type": "email", "message": "JMSrace", "next": "react"},
        {"id": "react", "type": "listen", "branches": [
            {"reaction": {"action": "mail", "kind": "opened"}, "next": "opened"},
            {"event": {"eventId": "JEVorder"}, "next": "bought"}],
         "timeout": {"after": "PT1H", "next": "late"}},
        {"id": "opened", "type": "end"}, {"id": "bought", "type": "end"},
        {"id": "late", "type": "end"}], speed=HOUR / timeout_s)

    async with httpx.AsyncClient(timeout=30) as http:
        async def delivered() -> dict[str, list[dict[str, Any]]] | None:
            mails = {p: await mails_to(http, e, BULK_SINK) for p, e in emails.items()}
            return mails if all(len(m) == 1 for m in mails.values()) else None
        mails = await eventually(delivered, "the email to every member", 15)
        # An open in the first seconds after sending is taken for a scanner's.
        await pool.execute("UPDATE tracked_messages SET sent_at = sent_at - interval"
                           " '1 minute' WHERE tenant_id = $1", tenant.name)

        async def open_mail(profile_id: str) -> None:
            [pixel] = re.findall(r'src="([^"]+/o/[^"]+)"', mails[profile_id][0]["html"])
            assert (await http.get(pixel, headers={"User-Agent": BROWSER})).status_code == 200

        await open_mail("r-open")
        await post_event(tenant, "JEVorder", {"customerId": "r-buy", "amount": 1})
        await post_event(tenant, "JEVorder", {"customerId": "r-both", "amount": 2})
        await reaches(pool, tenant, "race", {"r-open": ("finished", "opened"),
                                             "r-buy": ("finished", "bought"),
                                             "r-both": ("finished", "bought")})
        await open_mail("r-both")  # after its event: its wait is resolved already
    await reaches(pool, tenant, "race", {"r-idle": ("finished", "late")}, timeout_s + 10)
    assert await timers_of(pool, tenant) == 0  # the others' timeouts went with their waits

    paths = {"r-open": ("react", "reaction"), "r-buy": ("react", "event"),
             "r-both": ("react", "event"), "r-idle": ("react", "timedOut")}
    for profile_id, path in paths.items():
        steps = await steps_of(pool, tenant, "race", profile_id)
        assert kinds(steps, "reaction", "event", "timedOut") == [path], steps
        assert len(kinds(steps, "finished")) == 1


# --- joins --------------------------------------------------------------------------------------

async def test_two_paths_join_on_one_node_each_instance_passes_it_once(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    await journey_message(tenant.admin, "JMSjoin", "email", TEMPLATES["email"])
    cities = {"j-p1": "Paris", "j-p2": "Paris", "j-r1": "Rome", "j-r2": "Rome"}
    emails = {p: unique_email(p) for p in cities}
    for profile_id, city in cities.items():
        await put_profile(tenant, profile_id, person(profile_id, email=emails[profile_id],
                                                     city=city))
    await run(pool, tenant, "join", "fork", [
        {"id": "fork", "type": "condition", "branches": [
            {"when": {"path": "city", "op": "eq", "value": "Paris"}, "next": "short"}],
         "else": "long"},
        {"id": "short", "type": "wait", "duration": "PT1H", "next": "mail"},
        {"id": "long", "type": "wait", "duration": "PT2H", "next": "mail"},
        {"id": "mail", "type": "email", "message": "JMSjoin", "next": "done"},
        {"id": "done", "type": "end"}], speed=HOUR)
    await reaches(pool, tenant, "join", {p: ("finished", "done") for p in cities}, 20)
    for profile_id, city in cities.items():
        steps = await steps_of(pool, tenant, "join", profile_id)
        path = "short" if city == "Paris" else "long"
        assert [n for n, _ in kinds(steps, "entered")] == ["entry", "fork", path, "mail",
                                                          "done"], steps
        assert kinds(steps, "actionSent") == [("mail", "actionSent")]
    async with httpx.AsyncClient(timeout=30) as http:
        async def delivered() -> bool:
            return all([len(await mails_to(http, e, BULK_SINK)) == 1
                        for e in emails.values()])
        await eventually(delivered, "one email to each", 15)


# --- exit criteria ------------------------------------------------------------------------------

async def test_an_exit_event_takes_a_waiting_profile_out_and_its_timer_never_fires(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    await journey_message(tenant.admin, "JMSlate", "email", TEMPLATES["email"])
    await event_types(tenant, ORDER, OPT_OUT)
    emails = {p: unique_email(p) for p in ("x-out", "x-stay")}
    for profile_id, email in emails.items():
        await put_profile(tenant, profile_id, person(profile_id, email=email))
    timeout_s = 8
    await run(pool, tenant, "leave", "order", [
        {"id": "order", "type": "listen",
         "branches": [{"event": {"eventId": "JEVorder"}, "next": "done"}],
         "timeout": {"after": "PT1H", "next": "late"}},
        {"id": "late", "type": "email", "message": "JMSlate", "next": "done"},
        {"id": "done", "type": "end"}], speed=HOUR / timeout_s, exit=("JEVoptOut",))
    await reaches(pool, tenant, "leave", {p: ("waiting", "order") for p in emails})
    out = await instance(pool, tenant, "leave", "x-out")
    assert out is not None
    await post_event(tenant, "JEVoptOut", {"customerId": "x-out"})
    await reaches(pool, tenant, "leave", {"x-out": ("exited", "order")})
    assert await pool.fetchval(
        "SELECT count(*) FROM journey_timers WHERE tenant_id = $1 AND instance_id = $2",
        tenant.name, out["instance_id"]) == 0
    # The other one's timeout comes (its reminder sent); the one who left gets nothing.
    await reaches(pool, tenant, "leave", {"x-stay": ("finished", "done")}, timeout_s + 10)
    async with httpx.AsyncClient(timeout=30) as http:
        async def reminded() -> bool:
            return len(await mails_to(http, emails["x-stay"], BULK_SINK)) == 1
        await eventually(reminded, "the reminder to the one who stayed", 15)
        assert await mails_to(http, emails["x-out"], BULK_SINK) == []
    steps = await steps_of(pool, tenant, "leave", "x-out")
    assert steps[-1].kind == "exited" and steps[-1].detail == "exit criterion JEVoptOut"
    assert not kinds(steps, "timedOut", "event", "finished"), steps
    assert kinds(await steps_of(pool, tenant, "leave", "x-stay"), "timedOut") == [
        ("order", "timedOut")]


# --- early events -------------------------------------------------------------------------------

async def test_an_event_before_its_listen_is_taken_when_the_listen_comes_and_strays_drop(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    await event_types(tenant, ORDER)
    for profile_id in ("e-early", "e-late"):
        await put_profile(tenant, profile_id, person(profile_id))
    await put_profile(tenant, "e-outsider", person("e-outsider", lastName="Elsewhere"))
    async with httpx.AsyncClient(timeout=30) as http:
        # Events for profiles in no journey (one a profile, one not even that): counted
        # dropped, the gateway's answer a plain 202 (this also warms its type cache).
        dropped = await inputs_total(http, "event", "dropped")
        await post_event(tenant, "JEVorder", {"customerId": "e-outsider", "amount": 1})
        await post_event(tenant, "JEVorder", {"customerId": "e-nobody", "amount": 1})

        async def counted() -> bool:
            return await inputs_total(http, "event", "dropped") >= dropped + 2
        await eventually(counted, "both stray events counted dropped", 15)

        await run(pool, tenant, "early", "hold", [
            {"id": "hold", "type": "wait", "duration": "PT5H", "next": "order"},
            {"id": "order", "type": "listen",
             "branches": [{"event": {"eventId": "JEVorder"}, "next": "thanks"}],
             "timeout": {"after": "PT30H", "next": "late"}},
            {"id": "thanks", "type": "end"}, {"id": "late", "type": "end"}], speed=HOUR)
        await reaches(pool, tenant, "early", {p: ("waiting", "hold")
                                              for p in ("e-early", "e-late")})
        kept = await inputs_total(http, "event", "kept")
        await post_event(tenant, "JEVorder", {"customerId": "e-early", "amount": 7,
                                              "item": "book"})

        async def held() -> bool:
            row = await instance(pool, tenant, "early", "e-early")
            return row is not None and row["node"] == "hold" and len(
                row["document"]["seen"]) == 1
        await eventually(held, "the early event kept on the instance still at hold", 4)
        assert await inputs_total(http, "event", "kept") >= kept + 1
    await reaches(pool, tenant, "early", {"e-early": ("finished", "thanks"),
                                          "e-late": ("waiting", "order")}, 10)
    steps = await steps_of(pool, tenant, "early", "e-early")
    event = only(steps, "order", "event")
    assert event.at - only(steps, "hold", "entered").at >= timedelta(seconds=5)
    row = await instance(pool, tenant, "early", "e-early")
    assert row is not None
    document = row["document"]
    assert document["waits"]["order"] == {"customerId": "e-early", "amount": "7",
                                          "item": "book"}
    assert document["seen"] == []
    assert await instance(pool, tenant, "early", "e-outsider") is None
    assert not await pool.fetchval("SELECT count(*) FROM journey_instance_steps"
                                   " WHERE tenant_id = $1"
                                   " AND profile_id IN ('e-outsider', 'e-nobody')",
                                   tenant.name)


# --- actions excluded by a rule -----------------------------------------------------------------

async def test_an_action_a_rule_excludes_is_a_step_with_the_reason_and_the_instance_goes_on(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    await journey_message(tenant.admin, "JMSrules", "email", TEMPLATES["email"])
    emails = {p: unique_email(p) for p in ("a-ok", "a-unknown", "a-out")}
    await put_profile(tenant, "a-ok", person("a-ok", email=emails["a-ok"]))
    await put_profile(tenant, "a-unknown", {"email": emails["a-unknown"],
                                            "firstName": "a-unknown"})
    await put_profile(tenant, "a-out", {"email": emails["a-out"], "firstName": "a-out",
                                        "consent": {"email": {"marketing": "opted-out"}}})
    await put_profile(tenant, "a-noemail", {"firstName": "a-noemail",
                                            "consent": {"email": {"marketing": "opted-in"}}})
    await run(pool, tenant, "rules", "mail", [
        {"id": "mail", "type": "email", "message": "JMSrules", "next": "after"},
        {"id": "after", "type": "wait", "duration": "PT1H", "next": "done"},
        {"id": "done", "type": "end"}], speed=HOUR)
    people = ("a-ok", "a-unknown", "a-out", "a-noemail")
    await reaches(pool, tenant, "rules", {p: ("finished", "done") for p in people}, 15)

    async def excluded() -> dict[str, str] | None:
        found = {}
        for profile_id in people[1:]:
            steps = [s for s in await steps_of(pool, tenant, "rules", profile_id)
                     if s.kind == "actionExcluded"]
            if not steps:
                return None
            [step] = steps
            assert step.node == "mail"
            found[profile_id] = step.detail
        return found
    reasons = await eventually(excluded, "three actions excluded", 10)
    assert "no marketing consent on email (unknown)" in reasons["a-unknown"], reasons
    assert "no marketing consent on email (opted-out)" in reasons["a-out"], reasons
    assert reasons["a-noemail"] == "the profile has no email address"
    assert not kinds(await steps_of(pool, tenant, "rules", "a-ok"), "actionExcluded")
    async with httpx.AsyncClient(timeout=30) as http:
        async def delivered() -> bool:
            return len(await mails_to(http, emails["a-ok"], BULK_SINK)) == 1
        await eventually(delivered, "the email to the consenting profile", 15)
        for profile_id in ("a-unknown", "a-out"):
            assert await mails_to(http, emails[profile_id], BULK_SINK) == []


async def test_a_slow_http_receiver_does_not_hold_up_other_instances_timers(
        pool: asyncpg.Pool, tenant: Tenant, receiver: Receiver) -> None:
    """An HTTP action's call (up to its timeoutMs) runs beside the timers, not in their
    way: a wait coming due while a receiver takes its time ends on time."""
    await put_profile(tenant, "s-call", person("s-call", city="Paris"))
    await put_profile(tenant, "s-tick", person("s-tick", city="Rome"))
    await allow(tenant, receiver)
    await run(pool, tenant, "slowcall", "fork", [
        {"id": "fork", "type": "condition", "branches": [
            {"when": {"path": "city", "op": "eq", "value": "Paris"}, "next": "soon"}],
         "else": "later"},
        {"id": "soon", "type": "wait", "duration": "PT1H", "next": "call"},
        {"id": "call", "type": "http", "url": receiver.url("/slow"), "timeoutMs": 5000,
         "next": "done"},
        {"id": "later", "type": "wait", "duration": "PT2H", "next": "done"},
        {"id": "done", "type": "end"}], speed=HOUR)
    await reaches(pool, tenant, "slowcall", {"s-call": ("finished", "done"),
                                             "s-tick": ("finished", "done")}, 15)
    steps = await steps_of(pool, tenant, "slowcall", "s-tick")
    waited = only(steps, "done", "entered").at - only(steps, "later", "entered").at
    assert timedelta(seconds=2) <= waited < timedelta(seconds=3), waited
    async def failed() -> bool:
        return bool(kinds(await steps_of(pool, tenant, "slowcall", "s-call"), "httpFailed"))
    await eventually(failed, "the slow call's httpFailed step", 10)


async def test_what_an_update_writes_is_what_the_nodes_after_it_see(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    """An update, then a condition on the field it set and an email to the address and
    consent it set, all in one move: the condition and the email see the new values."""
    await declare(tenant, {"tier": "string"})
    await journey_message(tenant.admin, "JMSafter", "email", TEMPLATES["email"])
    email = unique_email("n-new")
    await put_profile(tenant, "n1", {"firstName": "n1", "attributes": {"tier": "bronze"}})
    await run(pool, tenant, "then", "promote", [
        {"id": "promote", "type": "updateProfile",
         "set": {"email": email, "attributes": {"tier": "gold"},
                 "consent": {"email": {"marketing": "opted-in"}}}, "next": "check"},
        {"id": "check", "type": "condition", "branches": [
            {"when": {"path": "attributes.tier", "op": "eq", "value": "gold"},
             "next": "mail"}], "else": "other"},
        {"id": "mail", "type": "email", "message": "JMSafter", "next": "done"},
        {"id": "other", "type": "end"}, {"id": "done", "type": "end"}], speed=HOUR)
    await reaches(pool, tenant, "then", {"n1": ("finished", "done")}, 15)
    async with httpx.AsyncClient(timeout=30) as http:
        async def delivered() -> bool:
            return len(await mails_to(http, email, BULK_SINK)) == 1
        await eventually(delivered, "the email to the address the update set", 15)
    assert not kinds(await steps_of(pool, tenant, "then", "n1"), "actionExcluded")


async def test_sms_and_push_actions_reach_the_provider_or_say_what_is_missing(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    await journey_message(tenant.admin, "JMSsms", "sms", {"text": "Hi {{ profile.first_name }}"})
    await journey_message(tenant.admin, "JMSpush", "push", TEMPLATES["push"])
    phone, token = f"+1555{uuid.uuid4().int % 10**7:07d}", f"tok-{uuid.uuid4().hex}"
    consent = {c: {"marketing": "opted-in"} for c in ("email", "sms", "push")}
    await put_profile(tenant, "m-both", {
        "firstName": "Ada", "mobilePhone": phone, "consent": consent,
        "pushDevices": [{"registrationToken": token, "application": "shop",
                         "pushPlatform": "fcm"}]})
    await put_profile(tenant, "m-none", {"firstName": "Bob", "consent": consent})
    await run(pool, tenant, "channels", "sms", [
        {"id": "sms", "type": "sms", "message": "JMSsms", "next": "push"},
        {"id": "push", "type": "push", "message": "JMSpush", "next": "done"},
        {"id": "done", "type": "end"}], speed=HOUR)
    await reaches(pool, tenant, "channels", {"m-both": ("finished", "done"),
                                             "m-none": ("finished", "done")})
    async with httpx.AsyncClient(timeout=30) as http:
        async def delivered() -> tuple[list[Any], list[Any]] | None:
            sms = await provider_messages(http, "sms", phone)
            push = await provider_messages(http, "push", token)
            return (sms, push) if sms and push else None
        sms, push = await eventually(delivered, "the SMS and the push at the provider", 15)
    assert [m["payload"]["text"] for m in sms] == ["Hi Ada"]
    assert [m["payload"]["title"] for m in push] == ["Hi Ada"]

    async def excluded() -> dict[str, str] | None:
        steps = await steps_of(pool, tenant, "channels", "m-none")
        found = {s.node: s.detail for s in steps if s.kind == "actionExcluded"}
        return found if len(found) == 2 else None
    assert await eventually(excluded, "both actions excluded", 10) == {
        "sms": "the profile has no mobile phone", "push": "the profile has no push device"}
    assert not kinds(await steps_of(pool, tenant, "channels", "m-both"), "actionExcluded")


async def test_an_email_opened_before_its_reaction_listen_is_taken_by_it(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    """The early rule for reactions: an open (the real tracking pixel) arriving while the
    instance still waits before its listen is kept, and the listen takes it at once."""
    await journey_message(tenant.admin, "JMSfirst", "email", TEMPLATES["email"])
    emails = {p: unique_email(p) for p in ("o-early", "o-never")}
    for profile_id, email in emails.items():
        await put_profile(tenant, profile_id, person(profile_id, email=email))
    await run(pool, tenant, "opens", "mail", [
        {"id": "mail", "type": "email", "message": "JMSfirst", "next": "hold"},
        {"id": "hold", "type": "wait", "duration": "PT8H", "next": "react"},
        {"id": "react", "type": "listen",
         "branches": [{"reaction": {"action": "mail", "kind": "opened"}, "next": "opened"}],
         "timeout": {"after": "PT30H", "next": "late"}},
        {"id": "opened", "type": "end"}, {"id": "late", "type": "end"}], speed=HOUR)
    async with httpx.AsyncClient(timeout=30) as http:
        async def delivered() -> list[dict[str, Any]] | None:
            return await mails_to(http, emails["o-early"], BULK_SINK) or None
        [mail] = await eventually(delivered, "the email", 10)
        await pool.execute("UPDATE tracked_messages SET sent_at = sent_at - interval"
                           " '1 minute' WHERE tenant_id = $1", tenant.name)
        [pixel] = re.findall(r'src="([^"]+/o/[^"]+)"', mail["html"])
        assert (await http.get(pixel, headers={"User-Agent": BROWSER})).status_code == 200

    async def held() -> bool:
        row = await instance(pool, tenant, "opens", "o-early")
        return row is not None and row["node"] == "hold" and [
            s["what"] for s in row["document"]["seen"]] == ["opened"]
    await eventually(held, "the open kept on the instance still at hold", 6)
    await reaches(pool, tenant, "opens", {"o-early": ("finished", "opened"),
                                          "o-never": ("waiting", "react")}, 15)
    steps = await steps_of(pool, tenant, "opens", "o-early")
    assert only(steps, "react", "reaction").at - only(steps, "hold", "entered").at >= \
        timedelta(seconds=8)


async def test_a_wait_until_a_moment_then_a_timeout_with_no_path_ends_timed_out(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    await event_types(tenant, ORDER)
    await put_profile(tenant, "t1", person("t1"))
    until = datetime.now(UTC) + timedelta(hours=3)  # 3 s at an hour a second
    await run(pool, tenant, "moment", "w", [
        {"id": "w", "type": "wait", "until": until.isoformat(), "next": "order"},
        {"id": "order", "type": "listen",
         "branches": [{"event": {"eventId": "JEVorder"}, "next": "done"}],
         "timeout": {"after": "PT1H"}},
        {"id": "done", "type": "end"}], speed=HOUR)
    await reaches(pool, tenant, "moment", {"t1": ("timedOut", "order")}, 15)
    steps = await steps_of(pool, tenant, "moment", "t1")
    waited = only(steps, "order", "entered").at - only(steps, "w", "entered").at
    assert timedelta(seconds=2) < waited < timedelta(seconds=4), waited
    timed_out = only(steps, "order", "timedOut").at - only(steps, "order", "entered").at
    assert timedelta(seconds=1) <= timed_out < timedelta(seconds=2), timed_out
    assert steps[-1].kind == "timedOut" and not kinds(steps, "finished")
    assert await timers_of(pool, tenant) == 0


# --- split (experiment) ---------------------------------------------------------------------------

async def test_split_sends_each_profile_down_its_hashed_branch_and_counts_them(
        pool: asyncpg.Pool, tenant: Tenant, http: httpx.AsyncClient) -> None:
    journey_id = f"exp{uuid.uuid4().hex[:8]}"  # the metric's labels name no tenant
    branches = [SplitBranch(name="A", weight=30, next="endA"),
                SplitBranch(name="B", weight=70, next="endB")]
    profile_ids = [f"s{i}" for i in range(16)]
    for profile_id in profile_ids:
        await put_profile(tenant, profile_id, person(profile_id))
    await run(pool, tenant, journey_id, "ab", [
        {"id": "ab", "type": "split",
         "branches": [b.model_dump(by_alias=True) for b in branches]},
        {"id": "endA", "type": "end"}, {"id": "endB", "type": "end"}], speed=HOUR)
    # the branch is the hash's, the same one the engine drew (nothing random here)
    expected = {p: choose(branches, bucket(tenant.name, journey_id, 1, "ab", p)).name
                for p in profile_ids}
    assert set(expected.values()) == {"A", "B"}, expected  # the test sees both branches
    await reaches(pool, tenant, journey_id,
                  {p: ("finished", f"end{b}") for p, b in expected.items()})
    for profile_id, branch in expected.items():
        row = await instance(pool, tenant, journey_id, profile_id)
        assert row is not None and row["document"]["branches"] == {"ab": branch}
        steps = await steps_of(pool, tenant, journey_id, profile_id)
        assert only(steps, "ab", "split").detail == branch

    tally = {name: list(expected.values()).count(name) for name in ("A", "B")}
    counts = await tenant.admin.get(f"/journeys/{journey_id}/counts")
    assert counts.status_code == 200, counts.text
    ab = next(n for n in counts.json()["nodes"] if n["node"] == "ab")
    assert ab["branches"] == tally and ab["entered"] == len(profile_ids)
    text = (await http.get(METRICS)).text
    split = {sample.labels["branch"]: sample.value
             for family in text_string_to_metric_families(text)
             if family.name == "parcours_journey_split"
             for sample in family.samples if sample.name.endswith("_total")
             and sample.labels["journey"] == journey_id and sample.labels["node"] == "ab"}
    assert split == {name: float(n) for name, n in tally.items() if n}


# --- holdout (the tenant's control group) --------------------------------------------------------

async def test_the_control_group_enters_no_live_journey_and_is_counted_at_the_entry(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    refused = await tenant.admin.put("/journey-holdout", json={"percent": 60})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == [
        "body", "percent"], refused.text
    assert (await tenant.admin.put("/journey-holdout", json={"percent": 2.555})
            ).status_code == 422
    assert (await tenant.admin.get("/journey-holdout")).json() == {"percent": 0.0}
    held = await tenant.admin.put("/journey-holdout", json={"percent": 40})
    assert held.status_code == 200 and held.json() == {"percent": 40.0}, held.text
    assert (await tenant.admin.get("/journey-holdout")).json() == {"percent": 40.0}

    await declare(tenant, {"arm": "string"})
    profile_ids = [f"h{i}" for i in range(16)]
    for profile_id in profile_ids:
        await put_profile(tenant, profile_id, person(profile_id))
    await run(pool, tenant, "promo", "mark", [
        {"id": "mark", "type": "updateProfile", "set": {"attributes": {"arm": "treated"}},
         "next": "done"},
        {"id": "done", "type": "end"}], speed=HOUR)
    out = {p for p in profile_ids if held_out(tenant.name, p, 40)}
    assert out and len(out) < len(profile_ids), out  # the test sees both sides
    await reaches(pool, tenant, "promo",
                  {p: ("heldOut", "entry") if p in out else ("finished", "done")
                   for p in profile_ids})

    async def updated() -> bool:
        for profile_id in set(profile_ids) - out:
            profile = (await tenant.profiles.get(f"/v1/profiles/{profile_id}")).json()
            if profile.get("attributes", {}).get("arm") != "treated":
                return False
        return True
    await eventually(updated, "the treated profiles updated", 20)
    for profile_id in out:  # nothing ran for the control group
        profile = (await tenant.profiles.get(f"/v1/profiles/{profile_id}")).json()
        assert "arm" not in profile.get("attributes", {}), profile
        assert kinds(await steps_of(pool, tenant, "promo", profile_id), "heldOut",
                     "profileUpdated", "transition") == [("entry", "heldOut")]
    counts = (await tenant.admin.get("/journeys/promo/counts")).json()
    assert counts["nodes"][0] | {"entered": 16, "heldOut": len(out),
                                 "passed": 16 - len(out)} == counts["nodes"][0]


# --- goals and conversion -----------------------------------------------------------------------

async def test_an_experiments_conversion_per_branch_counts_each_goal_once(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    await event_types(tenant, ORDER)
    branches = [SplitBranch(name="A", weight=50, next="endA"),
                SplitBranch(name="B", weight=50, next="endB")]
    profile_ids = [f"g{i}" for i in range(12)]
    for profile_id in profile_ids:
        await put_profile(tenant, profile_id, person(profile_id))
    await run(pool, tenant, "exp", "ab", [
        {"id": "ab", "type": "split",
         "branches": [b.model_dump(by_alias=True) for b in branches]},
        {"id": "endA", "type": "end"}, {"id": "endB", "type": "end"}], speed=HOUR,
        goals=({"id": "buy", "eventId": "JEVorder", "within": "P7D",
                "when": {"path": "event.amount", "op": "ge", "value": 10}},))
    branch = {p: choose(branches, bucket(tenant.name, "exp", 1, "ab", p)).name
              for p in profile_ids}
    await reaches(pool, tenant, "exp", {p: ("finished", f"end{b}") for p, b in branch.items()})
    buyers = profile_ids[::3]  # g0, g3, g6, g9 buy; g0 twice; g1 buys too little
    for profile_id in buyers:
        await post_event(tenant, "JEVorder", {"customerId": profile_id, "amount": "25.00"})
    await post_event(tenant, "JEVorder", {"customerId": "g0", "amount": "12"})
    await post_event(tenant, "JEVorder", {"customerId": "g1", "amount": "5"})

    async def converted() -> dict[str, Any] | None:
        answer = (await tenant.admin.get("/journeys/exp/conversion")).json()
        return answer if answer["goals"] and answer["goals"][0]["converted"] == len(
            buyers) else None
    report = await eventually(converted, "four conversions", 20)
    goal = report["goals"][0]
    assert goal["entered"] == 12 and goal["rate"] == round(len(buyers) / 12, 4)
    assert 0 <= goal["ci95"][0] < goal["rate"] < goal["ci95"][1] <= 1
    for name in ("A", "B"):
        took = [p for p in profile_ids if branch[p] == name]
        share = goal["branches"]["ab"].get(name, {"entered": 0, "converted": 0})
        assert (share["entered"], share["converted"]) == (
            len(took), len([p for p in took if p in buyers])), (name, goal)
    assert goal["heldOut"] == {"entered": 0, "converted": 0, "rate": None, "ci95": None}
    steps = await pool.fetch(
        "SELECT profile_id, detail FROM journey_steps WHERE tenant_id = $1"
        " AND journey_id = 'exp' AND kind = 'goal'", tenant.name)
    assert sorted(r["profile_id"] for r in steps) == sorted(buyers)  # g0 once


# --- send windows -------------------------------------------------------------------------------

async def test_an_action_outside_its_send_window_waits_for_the_opening_then_sends(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    await put_profile(tenant, "w1", person("w1"))  # no time zone: the tenant's (UTC)
    today = datetime.now(UTC).weekday()
    days = [d for i, d in enumerate(DAYS) if i != today]  # every day but today
    await run(pool, tenant, "windowed", "mail", [
        {"id": "mail", "type": "email", "message": "JMSnone",
         "window": {"days": days, "start": "00:00", "end": "23:59"}, "next": "done"},
        {"id": "done", "type": "end"}], speed=86_400, publishable=False)  # a day a second

    async def deferred() -> list[StepRow] | None:
        steps = await steps_of(pool, tenant, "windowed", "w1")
        return steps if kinds(steps, "deferred") else None
    steps = await eventually(deferred, "the message deferred to its window", 20)
    opening = datetime.combine(datetime.now(UTC).date() + timedelta(days=1),
                               datetime.min.time(), tzinfo=UTC)
    assert only(steps, "mail", "deferred").detail == opening.isoformat()
    assert not kinds(steps, "actionSent")  # not sent outside the window
    # the opening is under a day away: at a day a second, the timer fires within a second
    await reaches(pool, tenant, "windowed", {"w1": ("finished", "done")}, 20)
    steps = await steps_of(pool, tenant, "windowed", "w1")
    assert [k for _, k in kinds(steps, "deferred", "actionSent")] == ["deferred", "actionSent"]
    assert only(steps, "mail", "actionSent").at >= only(steps, "mail", "deferred").at


# --- an event entry's rate ----------------------------------------------------------------------

async def test_an_event_entry_past_its_rate_holds_profiles_and_lets_them_in_in_turn(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    signup = {"eventId": "JEVsignup", "profileKey": "customerId",
              "fields": [{"id": "customerId", "type": "string", "required": True}]}
    await event_types(tenant, signup)
    profile_ids = [f"r{i}" for i in range(6)]
    for profile_id in profile_ids:
        await put_profile(tenant, profile_id, person(profile_id))
    journey = {"id": "rated", "entry": {"type": "event", "eventId": "JEVsignup", "rate": 2,
                                        "next": "mark"},
               "nodes": [{"id": "mark", "type": "updateProfile",
                          "set": {"city": "Entered"}, "next": "done"},
                         {"id": "done", "type": "end"}]}
    draft = await tenant.admin.put("/journeys/rated", json=journey)
    assert draft.status_code == 201 and draft.json()["publishable"], draft.text
    await publish_version(pool, tenant.name, journey)
    for profile_id in profile_ids:  # six at once: two a second may enter
        await post_event(tenant, "JEVsignup", {"customerId": profile_id})
    await reaches(pool, tenant, "rated", {p: ("finished", "done") for p in profile_ids}, 30)
    entered = sorted([only(await steps_of(pool, tenant, "rated", p), "entry", "transition").at
                      for p in profile_ids])
    # none dropped, and never more than the rate: each next one at least ~1/2 s later
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(entered)]
    assert all(gap >= 0.45 for gap in gaps), gaps
    held = [p for p in profile_ids if kinds(await steps_of(pool, tenant, "rated", p), "held")]
    assert len(held) >= 4, held  # the events came faster than two a second
    counts = (await tenant.admin.get("/journeys/rated/counts")).json()
    assert counts["nodes"][0]["entered"] == 6 and counts["nodes"][0]["passed"] == 6


# --- holding, not dropping, at a capacity rule's cap ------------------------------------------

async def test_journey_messages_past_a_capacity_cap_are_held_for_the_next_free_slot(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    await journey_message(tenant.admin, "JMScap", "email", TEMPLATES["email"])
    rule = await tenant.admin.post("/rules", json={
        "kind": "capacity", "name": "one a day", "max": 1, "period": "P1D",
        "scope": "message"})
    assert rule.status_code == 201, rule.text
    typology = await tenant.admin.post("/typologies", json={
        "name": "Capped", "ruleIds": [rule.json()["ruleId"]], "isDefault": True})
    assert typology.status_code == 201, typology.text
    emails = {p: unique_email(p) for p in ("c1", "c2", "c3")}
    for profile_id, email in emails.items():
        await put_profile(tenant, profile_id, person(profile_id, email=email))
    await run(pool, tenant, "capped", "mail", [
        {"id": "mail", "type": "email", "message": "JMScap", "next": "done"},
        {"id": "done", "type": "end"}], speed=HOUR)
    await reaches(pool, tenant, "capped", {p: ("finished", "done") for p in emails}, 15)

    async def decided() -> list[asyncpg.Record] | None:
        rows = await pool.fetch(
            "SELECT profile_id, outcome, contact_at, reason FROM contact_history"
            " WHERE tenant_id = $1 ORDER BY contact_at", tenant.name)
        return rows if len(rows) == 3 else None
    rows = await eventually(decided, "three decisions", 15)
    sent = [r for r in rows if r["outcome"] in ("sent", "delivered")]
    held = [r for r in rows if r["outcome"] == "deferred"]
    assert len(sent) == 1 and len(held) == 2, [dict(r) for r in rows]  # none excluded
    # held for the next free slot: a day after the one that went, not dropped
    for row in held:
        assert row["contact_at"] > sent[0]["contact_at"] + timedelta(days=1), dict(row)
        assert "one a day" in row["reason"], dict(row)
    # The decision is recorded a moment before its held copy (the outbox entry is applied
    # again if the engine stops in between): poll, the way a reader of both would.
    async def both_waiting() -> bool:
        return await pool.fetchval(
            "SELECT count(*) FROM held_messages WHERE tenant_id = $1", tenant.name) == 2
    await eventually(both_waiting, "both deferred messages in held_messages", 10)
    # the engine's backlog gauges count them (every tenant's: at least these two)
    await backlog.measure(SimpleNamespace(pool=pool))  # type: ignore[arg-type]
    assert HELD.labels("messages")._value.get() >= 2
    assert HELD_OLDEST.labels("messages")._value.get() >= 0
    for profile_id in emails:
        assert not kinds(await steps_of(pool, tenant, "capped", profile_id), "actionExcluded")
