"""A journey's lifecycle through the admin API and the CLI on the real stack, each test in a
tenant of its own: publish (numbered versions; the draft's errors block it, warnings do
not), test runs (test profiles only, at most 100), pause / resume / stop with their 409s,
versions finished once empty, per-node counts, an instance's history, removing a profile,
and simulated reactions and journey events on their topics.

Waiting instances are made here with the state machine (``start``/``advance``) and the
instance store, not by the engine: the tests do not need it running. Journeys enter on an
event no one sends, and timers are a day away, so a running engine moves nothing here.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.adapters import journey_store
from shared.adapters import journey_version_store as versions
from shared.adapters.journey_store import DOCUMENT
from shared.adapters.key_store import create_key, create_tenant
from shared.adapters.test_profile_store import put_test_profile
from shared.domain.api_keys import Scope
from shared.domain.journeys.advance import Plan, advance, start
from shared.domain.journeys.codec import instance_to_json
from shared.domain.journeys.definition import parse_definition
from shared.domain.journeys.instance import (
    Effect,
    Instance,
    JourneyEvent,
    Reaction,
    Send,
    Step,
    Stop,
)
from shared.topics import JOURNEY_EVENTS, REACTIONS, Topic
from tests.integration.conftest import ADMIN, ROOT, end_offsets, eventually, settings
from tests.unit.test_journey_events import PURCHASE

OPT_OUT = {"fields": [{"id": "customerId", "type": "string"}], "profileKey": "customerId"}
ENTRY = {"type": "event", "eventId": "EVTnobodySendsIt"}

# Publishable whatever the messages: no action node.
WAITING: dict[str, Any] = {
    "id": "life", "entry": {**ENTRY, "next": "buy"},
    "nodes": [{"id": "buy", "type": "listen", "timeout": {"after": "P1D"},
               "branches": [{"event": {"eventId": "JEVpurchase"}, "next": "done"}]},
              {"id": "done", "type": "end"}],
    "exit": [{"eventId": "JEVoptOut"}]}

# The seed journey's shape, stored as a version directly (its messages need not exist).
FLOW: dict[str, Any] = {
    "id": "flow", "entry": {**ENTRY, "next": "mail"},
    "nodes": [
        {"id": "mail", "type": "email", "message": "JMSwelcome", "next": "push"},
        {"id": "push", "type": "push", "message": "JMSwelcomePush", "next": "react"},
        {"id": "react", "type": "listen",
         "branches": [{"reaction": {"action": "mail", "kind": "opened"}, "next": "buy"},
                      {"reaction": {"action": "push", "kind": "pushOpened"}, "next": "buy"}],
         "timeout": {"after": "P1D", "next": "reminder"}},
        {"id": "reminder", "type": "email", "message": "JMSreminder", "next": "buy"},
        {"id": "buy", "type": "listen",
         "branches": [{"event": {"eventId": "JEVpurchase"}, "next": "thanks"}],
         "timeout": {"after": "P30D"}},
        {"id": "thanks", "type": "push", "message": "JMSthanks", "next": "done"},
        {"id": "done", "type": "end"}],
    "exit": [{"eventId": "JEVoptOut"}]}


@dataclass
class Tenant:
    name: str
    key: str
    client: httpx.AsyncClient  # base: /admin/v1/journeys
    pool: asyncpg.Pool


@pytest.fixture
async def t(pool: asyncpg.Pool) -> AsyncIterator[Tenant]:
    name = f"jlc-{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, name, "journey lifecycle tests")
        key = await create_key(connection, name, Scope.ADMIN, "tests")
    async with httpx.AsyncClient(base_url=f"{ADMIN}/journeys", timeout=30, headers={
            "authorization": f"Bearer {key}"}) as client:
        for event_id, body in (("JEVpurchase", PURCHASE), ("JEVoptOut", OPT_OUT)):
            created = await client.put(f"{ADMIN}/journey-events/{event_id}", json=body)
            assert created.status_code == 201, created.text
        yield Tenant(name, key, client, pool)


async def _put(t: Tenant, definition: dict[str, Any]) -> None:
    stored = await t.client.put(f"/{definition['id']}", json=definition)
    assert stored.status_code in (200, 201), stored.text


async def _test_profiles(t: Tenant, count: int) -> list[str]:
    ids = [f"tp-{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]
    fields = {"email": None, "mobile_phone": None, "first_name": None, "last_name": None,
              "city": None, "birth_date": None, "locale": None, "attributes": {},
              "push_registrations": [], "sample_ctx": {}}
    async with t.pool.acquire() as connection:
        for profile in ids:
            assert await put_test_profile(connection, t.name, profile, fields) is not None
    return ids


async def _version(t: Tenant, definition: dict[str, Any], mode: str) -> int:
    """A version stored directly (no validation: its messages need not exist)."""
    await _put(t, definition)
    async with t.pool.acquire() as connection, connection.transaction():
        row = await versions.create_version(connection, t.name, definition["id"], mode=mode,
                                            definition=definition)
    return int(row["version"])


def _plan(definition: dict[str, Any], version: int) -> Plan:
    return Plan(parse_definition(definition), version)


def _no_sends(effects: Sequence[Effect]) -> list[Effect]:
    # Without their sends: no outbox row, so a running engine sends nothing for them.
    return [e for e in effects if not isinstance(e, Send)]


async def _enter(t: Tenant, definition: dict[str, Any], version: int, profile: str
                 ) -> Instance:
    instance, effects = start(_plan(definition, version), profile, 0, {},
                              datetime.now(UTC))
    async with t.pool.acquire() as connection:
        if await journey_store.create(connection, t.name, instance,
                                      _no_sends(effects)) is not None:
            return instance
        # A running engine entered it first: a test run's profiles enter by themselves.
        entered = await journey_store.live(connection, t.name, definition["id"], profile)
    assert entered is not None and entered.version == version
    return entered


async def _advance(t: Tenant, definition: dict[str, Any], instance: Instance,
                   event: Reaction | JourneyEvent | Stop) -> Instance:
    moved, effects = advance(_plan(definition, instance.version), instance, event,
                             datetime.now(UTC))
    async with t.pool.acquire() as connection:
        assert await journey_store.save(connection, t.name, instance.token, moved,
                                        _no_sends(effects)) is not None
    return moved


async def _versions(t: Tenant, journey: str) -> dict[int, dict[str, Any]]:
    listed = await t.client.get(f"/{journey}/versions")
    assert listed.status_code == 200, listed.text
    return {v["version"]: v for v in listed.json()}


async def _journey_state(t: Tenant, journey: str) -> str:
    return str((await t.client.get(f"/{journey}")).json()["state"])


# --- publish ---------------------------------------------------------------------------------

async def test_publish_numbers_live_versions_and_the_drafts_errors_block_it(t: Tenant
                                                                           ) -> None:
    assert (await t.client.post("/life/publish")).status_code == 404
    bad = copy.deepcopy(WAITING)
    bad["nodes"][0]["timeout"] = {"after": "P91D"}
    bad["nodes"].append({"id": "island", "type": "end"})
    await _put(t, bad)
    refused = await t.client.post("/life/publish")
    assert refused.status_code == 422
    problems = refused.json()["detail"]["problems"]
    assert {"node": "buy", "severity": "error",
            "message": "the timeout is over 90 days"} in problems
    assert any(p["node"] == "island" and p["severity"] == "error" for p in problems)
    assert problems == (await t.client.post("/life/validate")).json()["problems"]
    assert await _versions(t, "life") == {} and await _journey_state(t, "life") == "draft"

    warned = copy.deepcopy(WAITING)
    del warned["nodes"][0]["timeout"]  # a listen without a timeout: a warning only
    await _put(t, warned)
    validated = (await t.client.post("/life/validate")).json()
    assert validated["publishable"] and {p["severity"] for p in validated["problems"]} == {
        "warning"}
    first = await t.client.post("/life/publish")
    assert first.status_code == 201, first.text
    assert {k: first.json()[k] for k in ("version", "mode", "state", "testProfiles")} == {
        "version": 1, "mode": "live", "state": "live", "testProfiles": []}
    assert await _journey_state(t, "life") == "live"
    await _put(t, WAITING)
    second = (await t.client.post("/life/publish")).json()
    assert second["version"] == 2
    listed = await _versions(t, "life")
    assert list(listed) == [2, 1]
    assert listed[2]["state"] == "live" and listed[2]["entry"]["done"] is False
    # The older version took no more entries; with nothing waiting on it, it is finished.
    assert listed[1]["entry"]["done"] is True and listed[1]["state"] == "finished"
    one = (await t.client.get("/life/versions/2")).json()
    assert one["definition"]["nodes"][0]["timeout"] == {"after": "P1D"}
    assert (await t.client.get("/life/versions/9")).status_code == 404


async def test_an_older_version_stays_live_until_nothing_waits_then_reads_finished(
        t: Tenant) -> None:
    await _put(t, WAITING)
    assert (await t.client.post("/life/publish")).status_code == 201
    instance = await _enter(t, WAITING, 1, "p-old")
    assert (await t.client.post("/life/publish")).status_code == 201
    listed = await _versions(t, "life")
    assert (listed[1]["state"], listed[1]["waiting"], listed[1]["instances"]) == (
        "live", 1, 1)
    assert (listed[2]["state"], listed[2]["waiting"]) == ("live", 0)
    await _advance(t, WAITING, instance, JourneyEvent("JEVpurchase", {}))  # → done
    listed = await _versions(t, "life")
    assert listed[1]["state"] == "finished" and listed[1]["waiting"] == 0
    assert listed[2]["state"] == "live" and await _journey_state(t, "life") == "live"


# --- pause, resume, stop -----------------------------------------------------------------

async def test_pause_resume_and_stop_refuse_wrong_moves_saying_what_to_do(t: Tenant) -> None:
    await _put(t, WAITING)
    for verb in ("pause", "resume", "stop"):
        refused = await t.client.post(f"/life/{verb}")
        assert refused.status_code == 409 and "publish it first" in refused.json()["detail"]
    assert (await t.client.post("/life/publish")).status_code == 201
    not_paused = await t.client.post("/life/resume")
    assert not_paused.status_code == 409 and "not paused" in not_paused.json()["detail"]
    paused = await t.client.post("/life/pause")
    assert paused.status_code == 200 and [v["state"] for v in paused.json()] == ["paused"]
    assert await _journey_state(t, "life") == "paused"
    again = await t.client.post("/life/pause")
    assert again.status_code == 409 and "resume it" in again.json()["detail"]
    republish = await t.client.post("/life/publish")
    assert republish.status_code == 409 and "paused" in republish.json()["detail"]
    resumed = await t.client.post("/life/resume")
    assert [v["state"] for v in resumed.json()] == ["live"]
    assert await _journey_state(t, "life") == "live"
    assert (await t.client.post("/life/stop")).json()["versions"] == [1]
    assert await _journey_state(t, "life") == "stopped"
    for verb in ("pause", "resume", "stop"):
        refused = await t.client.post(f"/life/{verb}")
        assert refused.status_code == 409 and "publish it again" in refused.json()["detail"]
    assert (await t.client.post("/life/test/stop")).status_code == 409
    assert (await t.client.post("/life/publish")).json()["version"] == 2  # runs again


async def test_stop_ends_every_waiting_instance_stopped_as_the_state_machine_would(
        t: Tenant) -> None:
    await _put(t, WAITING)
    assert (await t.client.post("/life/publish")).status_code == 201
    waiting = [await _enter(t, WAITING, 1, f"p{i}") for i in range(3)]
    finished = await _advance(t, WAITING, await _enter(t, WAITING, 1, "p-done"),
                              JourneyEvent("JEVpurchase", {}))
    assert (await t.client.post("/life/pause")).status_code == 200  # a paused one stops too
    stopped = await t.client.post("/life/stop")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json() == {"journeyId": "life", "versions": [1], "stopped": 3}
    async with t.pool.acquire() as connection:
        for instance in waiting:
            row = await connection.fetchrow(
                f"SELECT state, {DOCUMENT} FROM journey_instances i WHERE tenant_id = $1"
                " AND instance_id = $2", t.name, instance.instance_id)
            expected, _ = advance(_plan(WAITING, 1), instance,
                                  Stop("the journey was stopped"), datetime.now(UTC))
            assert row["state"] == "stopped"
            assert row["document"] == instance_to_json(expected)
        timers = await connection.fetchval(
            "SELECT count(*) FROM journey_timers WHERE tenant_id = $1", t.name)
        steps = await connection.fetch(
            "SELECT profile_id, node, detail FROM journey_steps WHERE tenant_id = $1"
            " AND kind = 'stopped' ORDER BY profile_id", t.name)
        done = await connection.fetchval(
            "SELECT state FROM journey_instances WHERE tenant_id = $1 AND instance_id = $2",
            t.name, finished.instance_id)
    assert timers == 0 and done == "finished"
    assert [tuple(s) for s in steps] == [(f"p{i}", "buy", "the journey was stopped")
                                         for i in range(3)]
    assert (await _versions(t, "life"))[1]["state"] == "stopped"


# --- test runs -------------------------------------------------------------------------------

async def test_a_test_run_takes_up_to_100_test_profiles_and_nothing_else(t: Tenant) -> None:
    await _put(t, WAITING)
    profiles = await _test_profiles(t, 101)
    too_many = await t.client.post("/life/test", json={"profiles": profiles})
    assert too_many.status_code == 422
    assert "at most 100 test profiles" in too_many.json()["detail"]
    unknown = await t.client.post("/life/test", json={"profiles": [profiles[0], "ghost"]})
    assert unknown.status_code == 422 and "'ghost' is not a test profile" in \
        unknown.json()["detail"]
    async with t.pool.acquire() as connection:
        await connection.execute(
            "INSERT INTO profiles (tenant_id, profile_id, email) VALUES ($1, 'real', $2)",
            t.name, f"real-{uuid.uuid4().hex[:8]}@example.com")
    real = await t.client.post("/life/test", json={"profiles": ["real"]})
    assert real.status_code == 422 and "'real' is a real profile" in real.json()["detail"]
    assert (await t.client.post("/life/test", json={"profiles": []})).status_code == 422
    slow = await t.client.post("/life/test", json={"profiles": profiles[:1], "speed": 0.5})
    assert slow.status_code == 422
    assert await _versions(t, "life") == {}

    run = await t.client.post("/life/test", json={"profiles": profiles[:100]})
    assert run.status_code == 201, run.text
    body = run.json()
    assert (body["version"], body["mode"], body["state"], body["speed"]) == (
        1, "test", "live", 1440)
    assert body["testProfiles"] == profiles[:100]
    assert await _journey_state(t, "life") == "draft"  # a test run publishes nothing
    bad = copy.deepcopy(WAITING)
    bad["nodes"][0]["timeout"] = {"after": "P91D"}
    await _put(t, bad)
    blocked = await t.client.post("/life/test", json={"profiles": profiles[100:]})
    assert blocked.status_code == 422 and blocked.json()["detail"]["problems"]


async def test_test_runs_share_the_numbers_and_stop_apart_from_live_versions(
        t: Tenant) -> None:
    await _put(t, WAITING)
    first, second = await _test_profiles(t, 2)
    assert (await t.client.post("/life/test", json={"profiles": [first], "speed": 60})
            ).json()["version"] == 1
    assert (await t.client.post("/life/publish")).json()["version"] == 2
    assert (await t.client.post("/life/test", json={"profiles": [second]})
            ).json()["version"] == 3
    await _enter(t, WAITING, 1, first)
    await _enter(t, WAITING, 3, second)
    await _enter(t, WAITING, 2, "live-one")
    busy = await t.client.post("/life/test", json={"profiles": [first]})
    assert busy.status_code == 409 and f"instances/{first}" in busy.json()["detail"]
    assert (await t.client.post("/life/pause")).json()[0]["version"] == 2  # not the tests
    stopped = (await t.client.post("/life/test/stop")).json()
    assert (stopped["versions"], stopped["stopped"]) == ([1, 3], 2)
    listed = await _versions(t, "life")
    assert {n: v["state"] for n, v in listed.items()} == {1: "stopped", 2: "paused",
                                                          3: "stopped"}
    assert listed[1]["speed"] == 60 and listed[2]["waiting"] == 1


async def test_a_draft_with_a_running_test_run_is_not_deleted(t: Tenant) -> None:
    await _put(t, WAITING)
    [tester] = await _test_profiles(t, 1)
    assert (await t.client.post("/life/test", json={"profiles": [tester]})).status_code == 201
    refused = await t.client.delete("/life")
    assert refused.status_code == 409 and "/life/stop" in refused.json()["detail"]
    assert (await t.client.post("/life/test/stop")).status_code == 200
    assert (await t.client.delete("/life")).status_code == 204


# --- counts, history, removal -----------------------------------------------------------

async def _flow_with_four_profiles(t: Tenant) -> dict[str, Instance]:
    """p-open opened the mail (waits to buy); p-wait waits for a reaction; p-out left on
    the exit event; p-gone is removed; and one send excluded by a rule."""
    version = await _version(t, FLOW, "live")
    entered = {p: await _enter(t, FLOW, version, p)
               for p in ("p-open", "p-wait", "p-out", "p-gone")}
    opened = entered["p-open"]
    entered["p-open"] = await _advance(t, FLOW, opened,
                                       Reaction(opened.sent["mail"], "opened"))
    entered["p-out"] = await _advance(t, FLOW, entered["p-out"],
                                      JourneyEvent("JEVoptOut", {}))
    async with t.pool.acquire() as connection:
        await journey_store.write_steps(connection, t.name, entered["p-wait"],
                                        [Step("actionExcluded", "push", "fatigue")],
                                        datetime.now(UTC))
    return entered


async def test_counts_per_node_history_and_removal(t: Tenant) -> None:
    assert (await t.client.get("/flow/counts")).status_code == 404
    entered = await _flow_with_four_profiles(t)
    removed = await t.client.delete("/flow/instances/p-gone")
    assert removed.status_code == 200, removed.text
    assert (removed.json()["state"], removed.json()["node"]) == ("stopped", "react")
    assert (await t.client.delete("/flow/instances/p-gone")).status_code == 404
    counts = await t.client.get("/flow/counts")
    assert counts.status_code == 200, counts.text
    assert (counts.json()["version"], counts.json()["mode"]) == (1, "live")
    nodes = {n["node"]: n for n in counts.json()["nodes"]}
    assert list(nodes) == ["entry", "mail", "push", "react", "reminder", "buy", "thanks",
                           "done"]
    assert {k: nodes["entry"][k] for k in ("entered", "passed", "waiting", "exited")} == {
        "entered": 4, "passed": 4, "waiting": 0, "exited": 0}
    assert {k: nodes["mail"][k] for k in ("entered", "passed", "actionSent",
                                          "actionExcluded")} == {
        "entered": 4, "passed": 4, "actionSent": 4, "actionExcluded": 0}
    assert nodes["push"]["actionExcluded"] == 1
    assert nodes["push"]["excludedBy"] == {"fatigue": 1}
    assert {k: nodes["react"][k] for k in ("entered", "passed", "waiting", "exited",
                                           "reaction", "event", "timedOut")} == {
        "entered": 4, "passed": 1, "waiting": 1, "exited": 2, "reaction": 1, "event": 0,
        "timedOut": 0}
    assert (nodes["buy"]["entered"], nodes["buy"]["waiting"]) == (1, 1)
    assert nodes["done"]["entered"] == 0
    assert (await t.client.get("/flow/counts?version=1")).json() == counts.json()
    assert (await t.client.get("/flow/counts?version=2")).status_code == 404

    history = await t.client.get("/flow/instances/p-open")
    assert history.status_code == 200
    [instance] = history.json()["instances"]
    assert instance["instanceId"] == entered["p-open"].instance_id
    assert (instance["state"], instance["node"], instance["mode"]) == ("waiting", "buy",
                                                                      "live")
    assert [(s["kind"], s["node"], s["detail"]) for s in instance["steps"]] == [
        ("entered", "entry", ""), ("transition", "entry", "mail"), ("entered", "mail", ""),
        ("actionSent", "mail", instance["sent"]["mail"]), ("transition", "mail", "push"),
        ("entered", "push", ""), ("actionSent", "push", instance["sent"]["push"]),
        ("transition", "push", "react"), ("entered", "react", ""),
        ("reaction", "react", "opened"), ("transition", "react", "buy"),
        ("entered", "buy", "")]
    gone = (await t.client.get("/flow/instances/p-gone")).json()["instances"][0]
    assert (gone["state"], gone["reason"]) == ("stopped", "removed from the journey")
    assert gone["steps"][-1] == {**gone["steps"][-1], "kind": "stopped",
                                 "detail": "removed from the journey"}
    assert (await t.client.get("/flow/instances/nobody")).json()["instances"] == []
    assert (await t.client.get("/ghost/instances/p-open")).status_code == 404


# --- simulated reactions and events ----------------------------------------------------------

async def _records_after(before: dict[int, int], topic: Topic, wanted: Any,
                         what: str) -> tuple[bytes, dict[str, Any]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic.name, p) for p in before]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, before[tp.partition])

        async def found() -> tuple[bytes, dict[str, Any]] | None:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    value = orjson.loads(record.value)
                    if wanted(value):
                        return record.key, value
            return None

        return await eventually(found, what)
    finally:
        await consumer.stop()


async def test_simulated_reactions_and_events_reach_their_topics_for_test_runs_only(
        t: Tenant) -> None:
    version = await _version(t, FLOW, "test")
    [profile] = await _test_profiles(t, 1)
    instance = await _enter(t, FLOW, version, profile)
    # The refusals first: a running engine moves the instance on what is accepted.
    for body, status in (({"node": "reminder", "kind": "opened"}, 409),  # not sent yet
                         ({"node": "react", "kind": "opened"}, 422),  # not an action
                         ({"node": "push", "kind": "opened"}, 422),  # no opens of a push
                         ({"node": "mail", "kind": "opened", "link": 1}, 422)):
        refused = await t.client.post("/flow/test/reactions",
                                      json={"profileId": profile, **body})
        assert refused.status_code == status, (body, refused.text)
    assert (await t.client.post("/flow/test/reactions", json={
        "profileId": "nobody", "node": "mail", "kind": "opened"})).status_code == 404
    bad = await t.client.post("/flow/test/events", json={
        "profileId": profile, "eventId": "JEVpurchase", "payload": {"amount": "ten"}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == [
        "body", "payload", "amount"]
    other = await t.client.post("/flow/test/events", json={
        "profileId": profile, "eventId": "JEVpurchase", "payload": {"customerId": "x"}})
    assert other.status_code == 422 and "customerId" in other.json()["detail"]
    assert (await t.client.post("/flow/test/events", json={
        "profileId": profile, "eventId": "JEVnone", "payload": {}})).status_code == 404
    events_before = await end_offsets(JOURNEY_EVENTS)
    ignored = await t.client.post("/flow/test/events", json={
        "profileId": profile, "eventId": "JEVpurchase", "payload": {"purchaseMessage": "no"}})
    assert ignored.status_code == 202 and ignored.json()["accepted"] is False

    reactions_before = await end_offsets(REACTIONS)
    posted = await t.client.post("/flow/test/reactions", json={
        "profileId": profile, "node": "mail", "kind": "opened"})
    assert posted.status_code == 202, posted.text
    key, record = await _records_after(
        reactions_before, REACTIONS, lambda r: r["reactionId"] == posted.json()["reactionId"],
        "the simulated reaction on parcours.reactions.v1")
    assert key == profile.encode()
    assert (record["messageId"], record["kind"], record["source"], record["channel"]) == (
        instance.sent["mail"], "opened", "simulated", "email")
    assert record["origin"] == {"kind": "journey", "journeyId": "flow",
                                "journeyVersion": version, "nodeId": "mail",
                                "instanceId": instance.instance_id}
    event = await t.client.post("/flow/test/events", json={
        "profileId": profile, "eventId": "JEVoptOut", "payload": {}})
    assert event.status_code == 202 and event.json()["accepted"] is True, event.text
    key, record = await _records_after(
        events_before, JOURNEY_EVENTS,
        lambda r: r["tenant"] == t.name and r["profileId"] == profile,
        "the simulated journey event on parcours.journey-events.v1")
    assert key == profile.encode()  # the ignored one was written nowhere: this is the first
    assert (record["eventId"], record["payload"]) == ("JEVoptOut", {"customerId": profile})

    live = await _version(t, {**FLOW, "id": "liveflow"}, "live")
    await _enter(t, {**FLOW, "id": "liveflow"}, live, profile)
    for path, body in (("test/reactions", {"node": "mail", "kind": "opened"}),
                       ("test/events", {"eventId": "JEVoptOut", "payload": {}})):
        refused = await t.client.post(f"/liveflow/{path}", json={"profileId": profile,
                                                                 **body})
        assert refused.status_code == 409 and "test run" in refused.json()["detail"]


# --- the CLI ---------------------------------------------------------------------------------

def _cli(key: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", "journeys", *args],
                          cwd=ROOT, env={**os.environ, "PARCOURS_ADMIN_KEY": key},
                          capture_output=True, text=True, timeout=60)


async def test_the_cli_runs_the_lifecycle_and_shows_the_tree_with_counts(
        t: Tenant, tmp_path: Path) -> None:
    path = tmp_path / "life.json"
    path.write_text(json.dumps(WAITING))
    assert _cli(t.key, "put", str(path)).returncode == 0
    refused = _cli(t.key, "pause", "life")
    assert refused.returncode != 0 and "publish it first" in refused.stderr
    published = _cli(t.key, "publish", "life")
    assert published.returncode == 0, published.stderr
    assert "version 1" in published.stdout
    assert "paused" in _cli(t.key, "pause", "life").stdout
    assert "live" in _cli(t.key, "resume", "life").stdout
    [profile] = await _test_profiles(t, 1)
    tested = _cli(t.key, "test", "life", profile, "--speed", "60")
    assert tested.returncode == 0 and "version 2" in tested.stdout, tested.stderr
    table = _cli(t.key, "versions", "life").stdout
    assert "test" in table and "1440" not in table and "60" in table
    await _enter(t, WAITING, 2, profile)
    # Not an event of its type (its condition fails): the instance keeps waiting.
    simulated = _cli(t.key, "simulate-event", "life", profile, "JEVpurchase",
                     "--payload", json.dumps({"purchaseMessage": "no thanks"}))
    assert simulated.returncode == 0, simulated.stderr
    assert "not accepted: not an event of this type" in simulated.stdout
    history = _cli(t.key, "history", "life", profile)
    assert history.returncode == 0 and "transition" in history.stdout
    assert "entry" in history.stdout and "buy" in history.stdout
    test_stop = _cli(t.key, "stop", "life", "--test")
    assert "versions 2 stopped, 1 instances ended stopped" in test_stop.stdout, test_stop.stderr
    await _enter(t, WAITING, 1, "live-one")
    removed = _cli(t.key, "remove", "life", "live-one")
    assert removed.returncode == 0, removed.stderr
    assert "removed live-one from life: its instance ended stopped at buy" in removed.stdout
    assert "versions 1 stopped, 0 instances" in _cli(t.key, "stop", "life").stdout

    await _flow_with_four_profiles(t)
    shown = _cli(t.key, "show", "flow")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    line = next(x for x in lines if x.strip().startswith("react"))
    assert "entered 4  passed 1  waiting 2  exited 1  reaction 1" in line  # p-gone stays
    assert any("→ (see node buy)" in x for x in lines)  # the join
    counts = _cli(t.key, "counts", "flow")
    assert counts.returncode == 0 and "react" in counts.stdout
    sim = _cli(t.key, "simulate-reaction", "flow", "p-wait", "mail", "opened")
    assert sim.returncode != 0 and "test run" in sim.stderr
