"""Hold, do not drop, under limits (issue 13), on the real stack, every limit at once: a
journey ``event entry (rate 1/s) → SMS → end`` in a tenant of its own, its message under a
capacity rule of 3 per 6 s, twelve sign-ups posted at once, and the SMS provider answering
429 with ``Retry-After: 12`` to two of them. Polling with deadlines, the test watches where
each profile is held (at the entry, in ``held_messages`` by the capacity rule, in the
senders' retry schedule) and what the gauges say meanwhile, then counts: every profile
entered once, every message went to the provider exactly once, nothing excluded, failed or
dropped anywhere."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration import test_journey_engine
from tests.integration.conftest import PROVIDER, eventually, provider_messages, settings
from tests.integration.test_journey_activities import (
    event_types,
    kinds,
    post_event,
    put_profile,
    steps_of,
)
from tests.integration.test_journey_engine import Tenant, publish_version
from tests.integration.test_journey_messages import journey_message

tenant = test_journey_engine.tenant  # the fixture: a tenant of its own for each test

ENGINE_METRICS = f"http://127.0.0.1:{settings.journeys_metrics_port}/metrics"
SMS_BULK_METRICS = f"http://127.0.0.1:{settings.sender_sms_bulk_metrics_port}/metrics"
LANE = "sender-sms-bulk"  # journey messages go on the channel's bulk lane

PROFILES = [f"L{i:02d}" for i in range(12)]
RATE = 1  # profiles entering a second: twelve at once are held at the entry up to ~11 s
CAP, PERIOD_S = 3, 6  # the capacity rule: 0.5 a second, under the entry's 1 a second
RETRY_AFTER_S = 12  # over the gauges' 10 s count, so a count falls inside the hold
REFUSED = ("L00", "L11")  # the provider's 429, both armed before the sign-ups: the
# engine takes them from Kafka by partition, so which enters first is its own affair
DEADLINE_S = 55

SIGNUP: dict[str, Any] = {"eventId": "JEVlimits", "profileKey": "customerId",
                           "fields": [{"id": "customerId", "type": "string",
                                       "required": True}]}


def gauge(text: str, name: str, labels: str) -> float:
    found = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.M)
    assert found, f"{name}{{{labels}}} not exposed"
    return float(found.group(1))


@dataclass
class Seen:
    """What was held where, by profile, and whether each gauge counted this tenant's."""
    at_entry: set[str] = field(default_factory=set)
    at_cap: dict[str, datetime] = field(default_factory=dict)  # profile → latest release
    in_retries: dict[str, tuple[float, datetime]] = field(
        default_factory=dict)  # profile → (the wait first asked, in s; first refused at)
    retry_errors: set[str] = field(default_factory=set)
    gauges: set[str] = field(default_factory=set)  # entries, messages, retries


async def watch(pool: asyncpg.Pool, http: httpx.AsyncClient, t: Tenant, seen: Seen) -> None:
    """One look: this tenant's held rows, then the gauges against everyone else's rows
    (read after the scrape). A gauge counted since this tenant's rows came in is at least
    everyone else's plus one; one that ignored them is everyone else's (others' day-long
    holds from other tests are about constant)."""
    engine = (await http.get(ENGINE_METRICS)).text
    sender = (await http.get(SMS_BULK_METRICS)).text
    mine_entry = {r["profile_id"] for r in await pool.fetch(
        "SELECT profile_id FROM journey_instances WHERE tenant_id = $1"
        " AND state = 'waiting' AND node = 'entry'", t.name)}
    mine_cap = await pool.fetch(
        "SELECT record ->> 'profileId' AS profile_id, due_at, held_at FROM held_messages"
        " WHERE tenant_id = $1", t.name)
    mine_retry = await pool.fetch(
        "SELECT record ->> 'profileId' AS profile_id, last_error, first_failed_at,"
        " extract(epoch FROM due_at - first_failed_at) AS wait FROM send_retries"
        " WHERE lane = $1 AND record ->> 'tenant' = $2", LANE, t.name)
    others = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM journey_instances WHERE state = 'waiting'"
        "        AND node = 'entry' AND tenant_id <> $1) AS entries,"
        " (SELECT count(*) FROM held_messages WHERE record -> 'origin' ->> 'kind' = 'journey'"
        "        AND tenant_id <> $1) AS messages,"
        " (SELECT count(*) FROM send_retries WHERE lane = $2"
        "        AND record ->> 'tenant' IS DISTINCT FROM $1) AS retries", t.name, LANE)
    seen.at_entry |= mine_entry
    for row in mine_cap:
        # Held with its release time: the instant the cap frees one more, which may be
        # the very moment it was held (seen in CI: 0.3 ms before held_at, the release
        # computed in Python, held_at PostgreSQL's now()).
        assert row["due_at"] > row["held_at"] - timedelta(seconds=1), dict(row)
        seen.at_cap[row["profile_id"]] = max(row["due_at"],
                                             seen.at_cap.get(row["profile_id"], row["due_at"]))
    for row in mine_retry:  # the wait first asked (a row being retried is leased longer)
        seen.in_retries.setdefault(row["profile_id"],
                                   (float(row["wait"]), row["first_failed_at"]))
        seen.retry_errors.add(row["last_error"])
    held = "parcours_journey_held"
    retry = ("parcours_sender_retry_schedule", f'channel="sms",lane="{LANE}"')
    shown = {  # what → (its count, the age of its oldest, this tenant's rows)
        "entries": (gauge(engine, held, 'what="entries"'),
                    gauge(engine, f"{held}_oldest_seconds", 'what="entries"'), mine_entry),
        "messages": (gauge(engine, held, 'what="messages"'),
                     gauge(engine, f"{held}_oldest_seconds", 'what="messages"'), mine_cap),
        "retries": (gauge(sender, f"{retry[0]}_messages", retry[1]),
                    gauge(sender, f"{retry[0]}_oldest_seconds", retry[1]), mine_retry)}
    for what, (count, oldest, mine) in shown.items():
        if mine and count >= others[what] + 1:  # counted with this tenant's
            assert oldest > 0, (what, count, oldest)  # and aged, at the same count
            seen.gauges.add(what)


async def test_past_every_limit_each_journey_message_is_held_then_sent_once_none_dropped(
        pool: asyncpg.Pool, tenant: Tenant) -> None:
    await journey_message(tenant.admin, "JMSlimits", "sms", {"text": "Hi {{ profile.first_name }}"})
    rule = await tenant.admin.post("/rules", json={
        "kind": "capacity", "name": "three per six seconds", "max": CAP,
        "period": f"PT{PERIOD_S}S", "scope": "message"})
    assert rule.status_code == 201, rule.text
    typology = await tenant.admin.post("/typologies", json={
        "name": "Limited", "ruleIds": [rule.json()["ruleId"]], "isDefault": True})
    assert typology.status_code == 201, typology.text
    await event_types(tenant, SIGNUP)
    phones = {p: f"+1555{uuid.uuid4().int % 10**7:07d}" for p in PROFILES}
    for profile_id, phone in phones.items():
        await put_profile(tenant, profile_id, {
            "firstName": profile_id, "mobilePhone": phone,
            "consent": {"sms": {"marketing": "opted-in"}}})
    journey = {"id": "limits", "entry": {"type": "event", "eventId": SIGNUP["eventId"],
                                         "rate": RATE, "next": "sms"},
               "nodes": [{"id": "sms", "type": "sms", "message": "JMSlimits", "next": "done"},
                         {"id": "done", "type": "end"}]}
    draft = await tenant.admin.put("/journeys/limits", json=journey)
    assert draft.status_code == 201 and draft.json()["publishable"], draft.text
    await publish_version(pool, tenant.name, journey, speed=1)

    seen = Seen()
    async with httpx.AsyncClient(timeout=30) as http:
        async def refuse(profile_id: str) -> None:
            answer = await http.post(f"{PROVIDER}/reject", params={
                "status": 429, "count": 1, "to": phones[profile_id],
                "retry_after": str(RETRY_AFTER_S)})
            assert answer.status_code == 204, answer.text
        for profile_id in REFUSED:
            await refuse(profile_id)
        started = time.monotonic()
        for profile_id in PROFILES:  # twelve at once, at an entry letting in one a second
            await post_event(tenant, SIGNUP["eventId"], {"customerId": profile_id})

        async def all_sent_once() -> dict[str, list[dict[str, Any]]] | None:
            try:
                return await look()
            except httpx.TransportError:  # a scrape cut short on a loaded machine: again
                return None

        async def look() -> dict[str, list[dict[str, Any]]] | None:
            await watch(pool, http, tenant, seen)
            finished = await pool.fetchval(
                "SELECT count(*) FROM journey_instances WHERE tenant_id = $1"
                " AND state = 'finished'", tenant.name)
            if finished < len(PROFILES):
                return None
            got = {p: await provider_messages(http, "sms", phone)
                   for p, phone in phones.items()}
            return got if all(got.values()) and not any(
                await pool.fetch("SELECT 1 FROM send_retries WHERE record ->> 'tenant' = $1",
                                 tenant.name)) else None
        try:
            delivered = await eventually(all_sent_once, "every profile's SMS at the provider",
                                         DEADLINE_S)
        except AssertionError as late:  # say who is missing, and where each one stands
            where = await pool.fetch(
                "SELECT i.profile_id, i.state, i.node, h.outcome, h.reason"
                " FROM journey_instances i LEFT JOIN contact_history h ON"
                " h.tenant_id = i.tenant_id AND h.profile_id = i.profile_id"
                " WHERE i.tenant_id = $1 ORDER BY 1", tenant.name)
            missing = [p for p, phone in phones.items()
                       if len(await provider_messages(http, "sms", phone)) != 1]
            raise AssertionError(f"{late}; not sent once: {missing}; instances of"
                                 f" {len(where)}: {[tuple(r) for r in where]}") from None
        elapsed = time.monotonic() - started
        duplicates = (await http.get(f"{PROVIDER}/duplicates")).json()

    # --- the entry: every event in, none more than once, most of them held first --------
    entered, held = {}, {}
    for profile_id in PROFILES:
        steps = await steps_of(pool, tenant, "limits", profile_id)
        entered[profile_id] = [s for s in steps if (s.node, s.kind) == ("entry", "transition")]
        held[profile_id] = kinds(steps, "held")
        assert not kinds(steps, "actionExcluded", "error", "exited", "stopped"), steps
        assert [(s.node, s.kind) for s in steps if s.kind == "actionSent"] == [
            ("sms", "actionSent")], steps
        assert [s.node for s in steps if s.kind == "finished"] == ["done"], steps
    assert all(len(e) == 1 for e in entered.values()), entered
    held_at_entry = {p for p, h in held.items() if h}
    assert len(held_at_entry) >= len(PROFILES) - 3, held_at_entry  # one a second let in
    assert all(len(h) == 1 for p, h in held.items() if h), held
    assert seen.at_entry <= held_at_entry and len(seen.at_entry) >= 5, seen.at_entry
    entry_times = sorted(e[0].at for e in entered.values())
    spread = (entry_times[-1] - entry_times[0]).total_seconds()
    assert spread >= (len(PROFILES) - 1) / RATE * 0.9, spread  # the rate held

    # --- the capacity rule: some deferred, then decided again and sent -------------------
    decisions = await pool.fetch(
        "SELECT profile_id, outcome, rule_id, reason FROM contact_history"
        " WHERE tenant_id = $1", tenant.name)
    outcomes = {r["profile_id"]: r["outcome"] for r in decisions}
    assert len(decisions) == len(PROFILES) and set(outcomes) == set(PROFILES), decisions
    assert set(outcomes.values()) <= {"sent", "delivered"}, outcomes  # 0 excluded, 0 failed
    assert len(seen.at_cap) >= CAP, seen.at_cap  # the cap was reached, they were held
    for profile_id, release in seen.at_cap.items():  # released when due, not before
        assert delivered[profile_id][0]["receivedAt"] >= release.timestamp(), profile_id

    # --- the provider's rate limit: held as long as it asked, then sent once --------------
    assert set(seen.in_retries) == set(REFUSED), seen.in_retries
    for profile_id, (wait, refused_at) in seen.in_retries.items():  # as long as it asked
        assert wait >= RETRY_AFTER_S - 0.1, seen.in_retries
        assert delivered[profile_id][0]["receivedAt"] >= refused_at.timestamp() + wait
    assert seen.retry_errors and all("429" in e for e in seen.retry_errors), seen.retry_errors

    # --- the count: each profile's SMS at the provider exactly once, nothing twice --------
    assert {p: [m["payload"]["text"] for m in ms] for p, ms in delivered.items()} == {
        p: [f"Hi {p}"] for p in PROFILES}
    sent_ids = {m["messageId"] for ms in delivered.values() for m in ms}
    assert len(sent_ids) == len(PROFILES) and not sent_ids & set(duplicates), duplicates
    counts = (await tenant.admin.get("/journeys/limits/counts")).json()
    entry_counts = next(n for n in counts["nodes"] if n["node"] == "entry")
    assert (entry_counts["entered"], entry_counts["passed"]) == (len(PROFILES),) * 2, counts
    # the books balance: entered + still held at the entry == events sent (one instance
    # a profile); delivered + still held by the cap or the provider == entered
    states = dict(await pool.fetch(
        "SELECT state || ':' || node, count(*) FROM journey_instances WHERE tenant_id = $1"
        " GROUP BY 1", tenant.name))
    still = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM journey_instances WHERE tenant_id = $1"
        "        AND state = 'waiting' AND node = 'entry') AS at_entry,"
        " (SELECT count(*) FROM held_messages WHERE tenant_id = $1) AS at_cap,"
        " (SELECT count(*) FROM send_retries WHERE record ->> 'tenant' = $1) AS retries",
        tenant.name)
    total_entered = sum(map(len, entered.values()))
    assert total_entered + still["at_entry"] == len(PROFILES), (total_entered, still)
    assert len(sent_ids) + still["at_cap"] + still["retries"] == total_entered, still
    assert states == {"finished:done": len(PROFILES)}, states

    # --- the gauges counted what was held, while it was held ------------------------------
    assert seen.gauges == {"entries", "messages", "retries"}, seen.gauges
    assert elapsed < DEADLINE_S


pytestmark = pytest.mark.integration
