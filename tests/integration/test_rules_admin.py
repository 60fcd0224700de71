"""Delivery rules through the admin API on the real stack (admin service, PostgreSQL),
each test in a tenant of its own: every kind of rule created, listed, shown, replaced and
deleted; 422s naming the field (inside a condition too); 409s saying what to do;
typologies keeping their order, one default per tenant; event configurations naming a
typology and a topic the tenant has; the denylist's normalisation and pages; quarantine by
hand and released; settings; a listening TenantRulesCache told of changes at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from shared.adapters.key_store import create_key, create_tenant
from shared.adapters.rules_store import TenantRulesCache
from shared.domain.api_keys import Scope
from shared.settings import get_settings
from tests.integration.conftest import ADMIN, eventually

pytestmark = pytest.mark.integration
SCHEMA = {"attributes": [{"name": "age", "type": "integer"},
                         {"name": "weeklyEmails", "type": "integer"},
                         {"name": "nickname", "type": "string"}],
          "topics": [{"id": "newsletter"}]}
UNDER_18 = {"kind": "filtering", "name": "Under 18",
            "condition": {"path": "attributes.age", "op": "lt", "value": 18}}
CAPACITY = {"kind": "capacity", "name": "1,000 a day", "max": 1000, "period": "P1D"}
CONTROL = {"kind": "control", "name": "Well formed",
           "checks": ["subjectPresent", "noUnrenderedTags", "maxBytes"], "maxBytes": 102400}
FATIGUE = {"kind": "fatigue", "name": "Two emails a week", "channels": ["email"], "max": 2,
           "period": "P7D", "atCap": "defer"}
QUIET = {"kind": "quietHours", "name": "Nights", "channels": ["email", "sms"],
         "start": "21:00", "end": "08:00"}


async def new_tenant(pool: asyncpg.Pool) -> tuple[str, str]:
    name = f"rules-{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, name, "delivery rules tests")
        key = await create_key(connection, name, Scope.ADMIN, "tests")
    return name, key


class TenantAdmin(httpx.AsyncClient):
    tenant: str


@pytest.fixture
async def admin(pool: asyncpg.Pool) -> AsyncIterator[TenantAdmin]:
    name, key = await new_tenant(pool)
    async with TenantAdmin(base_url=ADMIN, timeout=30,
                           headers={"authorization": f"Bearer {key}"}) as client:
        client.tenant = name
        declared = await client.put("/profile-schema", json=SCHEMA)
        assert declared.status_code == 200, declared.text
        yield client


async def created(admin: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await admin.post(path, json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def locs(response: httpx.Response) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    return [problem["loc"] for problem in response.json()["detail"]]


async def test_each_kind_is_created_listed_shown_replaced_and_deleted(
        admin: httpx.AsyncClient) -> None:
    bodies = [UNDER_18, CAPACITY, CONTROL, FATIGUE, QUIET]
    rules = [await created(admin, "/rules", body) for body in bodies]
    assert [r["ruleId"] for r in rules] == ["r1", "r2", "r3", "r4", "r5"]
    assert rules[0]["condition"] == UNDER_18["condition"] and rules[0]["enabled"] is True
    assert rules[1]["period"] == "P1D" and rules[1]["scope"] == "message"
    assert rules[3]["atCap"] == "defer" and rules[3]["transactional"] == "exempt"
    assert (rules[4]["start"], rules[4]["end"]) == ("21:00:00", "08:00:00")

    listed = (await admin.get("/rules")).json()
    assert [(r["ruleId"], r["kind"], r["name"], r["enabled"]) for r in listed] == [
        (r["ruleId"], b["kind"], b["name"], True) for r, b in zip(rules, bodies, strict=True)]
    summaries = {r["ruleId"]: r["summary"] for r in listed}
    assert summaries["r1"] == "excludes attributes.age lt 18"
    assert summaries["r2"] == "at most 1000 per message per 1 day"
    assert summaries["r4"].startswith("at most 2 on email per 7 days, defer at the cap")
    assert summaries["r5"].startswith("email, sms: quiet 21:00-08:00")
    assert (await admin.get("/rules/r4")).json() == rules[3]

    replaced = await admin.put("/rules/r4", json={**FATIGUE, "max": 3, "enabled": False})
    assert replaced.status_code == 200, replaced.text
    assert (await admin.get("/rules/r4")).json() == {**rules[3], "max": 3, "enabled": False}
    changed_kind = await admin.put("/rules/r4", json=QUIET)
    assert changed_kind.status_code == 409 and "POST /admin/v1/rules" in changed_kind.text
    assert (await admin.put("/rules/r99", json=FATIGUE)).status_code == 404
    assert (await admin.get("/rules/r99")).status_code == 404

    assert (await admin.delete("/rules/r2")).status_code == 204
    assert (await admin.get("/rules/r2")).status_code == 404
    assert (await admin.delete("/rules/r2")).status_code == 404
    again = await created(admin, "/rules", CAPACITY)
    assert again["ruleId"] == "r6"  # an id is never given twice


async def test_a_rule_refused_names_the_field(admin: httpx.AsyncClient) -> None:
    unknown_path = {**UNDER_18, "condition": {"all": [
        {"path": "city", "op": "eq", "value": "Paris"},
        {"path": "attributes.shoeSize", "op": "lt", "value": 18}]}}
    assert locs(await admin.post("/rules", json=unknown_path)) == [
        ["body", "condition", "all", 1, "path"]]
    missing_value = {**UNDER_18, "condition": {"all": [{"path": "city", "op": "eq"}]}}
    assert locs(await admin.post("/rules", json=missing_value)) == [
        ["body", "condition", "all", 0, "value"]]
    wrong_type = {**UNDER_18, "condition": {"path": "attributes.age", "op": "lt", "value": "x"}}
    assert locs(await admin.post("/rules", json=wrong_type)) == [["body", "condition", "value"]]

    unknown_attribute = await admin.post("/rules", json={**FATIGUE,
                                                         "maxFrom": "attributes.perWeek"})
    assert locs(unknown_attribute) == [["body", "maxFrom"]]
    assert "attributes.perWeek" in unknown_attribute.text
    not_integer = await admin.post("/rules", json={**FATIGUE, "maxFrom": "attributes.nickname"})
    assert locs(not_integer) == [["body", "maxFrom"]]
    from_attribute = await created(admin, "/rules", {**FATIGUE,
                                                     "maxFrom": "attributes.weeklyEmails"})
    assert from_attribute["maxFrom"] == "attributes.weeklyEmails"

    no_size = await admin.post("/rules", json={**CONTROL, "maxBytes": None})
    assert locs(no_size) == [["body", "maxBytes"]]
    assert locs(await admin.post("/rules", json={"name": "kindless"})) == [["body", "kind"]]
    assert locs(await admin.post("/rules", json={**UNDER_18, "kind": "nope"})) == [
        ["body", "kind"]]
    assert locs(await admin.post("/rules", json={**CAPACITY, "max": -1})) == [["body", "max"]]
    assert locs(await admin.post("/rules", json={**QUIET, "start": "25:00"})) == [
        ["body", "start"]]
    assert ["body", "channels", 0] in locs(await admin.post("/rules", json={
        **QUIET, "channels": ["fax"]}))
    assert locs(await admin.put("/rules/r1", json={**FATIGUE, "period": "P0D"})) == [
        ["body", "period"]]
    assert [r["ruleId"] for r in (await admin.get("/rules")).json()] == ["r1"]


async def test_typologies_keep_their_order_and_one_default(admin: httpx.AsyncClient) -> None:
    for body in (UNDER_18, CAPACITY, CONTROL, FATIGUE):
        await created(admin, "/rules", body)
    first = await created(admin, "/typologies", {"name": "Marketing",
                                                 "ruleIds": ["r3", "r1", "r2"],
                                                 "isDefault": True})
    assert (first["typologyId"], first["ruleIds"], first["isDefault"]) == (
        "t1", ["r3", "r1", "r2"], True)
    assert (await admin.get("/typologies/t1")).json()["ruleIds"] == ["r3", "r1", "r2"]

    refused = await admin.post("/typologies", json={"name": "Bad",
                                                    "ruleIds": ["r1", "r4", "r9", "r1"]})
    assert locs(refused) == [["body", "ruleIds", 1], ["body", "ruleIds", 2],
                             ["body", "ruleIds", 3]]
    assert "fatigue" in refused.text and "no rule 'r9'" in refused.text

    second = await created(admin, "/typologies", {"name": "Offers", "ruleIds": ["r1"],
                                                  "isDefault": True})
    defaults = {t["typologyId"]: t["isDefault"] for t in (await admin.get("/typologies")).json()}
    assert defaults == {"t1": False, "t2": True} and second["typologyId"] == "t2"
    back = await admin.put("/typologies/t1", json={"name": "Marketing", "ruleIds": ["r2", "r3"],
                                                   "isDefault": True})
    assert back.status_code == 200 and back.json()["ruleIds"] == ["r2", "r3"]
    defaults = {t["typologyId"]: t["isDefault"] for t in (await admin.get("/typologies")).json()}
    assert defaults == {"t1": True, "t2": False}
    assert (await admin.put("/typologies/t9", json={"name": "x"})).status_code == 404

    in_use = await admin.delete("/rules/r2")
    assert in_use.status_code == 409 and "t1" in in_use.text and "t2" not in in_use.text
    assert (await admin.delete("/rules/r4")).status_code == 204  # in no typology


async def test_an_event_names_a_typology_and_topic_of_its_tenant(
        admin: httpx.AsyncClient) -> None:
    await created(admin, "/rules", UNDER_18)
    await created(admin, "/typologies", {"name": "Marketing", "ruleIds": ["r1"]})
    event_id = f"EVTrules{uuid.uuid4().hex[:8]}"
    config = {"eventId": event_id, "label": "offer", "channel": "email",
              "targeting": "profile", "marketing": True}
    refused = await admin.post("/events", json={**config, "typology": "t2", "topic": "offers"})
    assert locs(refused) == [["body", "typology"], ["body", "topic"]]
    await created(admin, "/events", {**config, "typology": "t1", "topic": "newsletter"})
    assert locs(await admin.put(f"/events/{event_id}", json={**config, "typology": "t7"})) == [
        ["body", "typology"]]

    named = await admin.delete("/typologies/t1")
    assert named.status_code == 409 and event_id in named.text
    assert (await admin.post(f"/events/{event_id}/publish")).status_code == 200
    assert (await admin.delete("/typologies/t1")).status_code == 409
    assert (await admin.get("/typologies/t1")).status_code == 200  # the refusal undid it
    assert (await admin.post(f"/events/{event_id}/unpublish")).status_code == 200
    assert (await admin.delete("/typologies/t1")).status_code == 204  # unpublished: allowed
    assert (await admin.delete("/typologies/t1")).status_code == 404
    dangling = await admin.post(f"/events/{event_id}/publish")
    assert dangling.status_code == 409 and "t1" in dangling.text
    assert (await admin.put(f"/events/{event_id}", json=config)).status_code == 200
    assert (await admin.post(f"/events/{event_id}/publish")).status_code == 200
    assert (await admin.delete("/rules/r1")).status_code == 204


async def test_rule_settings(admin: httpx.AsyncClient) -> None:
    assert (await admin.get("/rule-settings")).json() == {
        "timeZone": "UTC",
        "quarantine": {"softFailures": 5, "softSpacing": "P1D", "releaseAfter": "P30D"}}
    assert locs(await admin.put("/rule-settings", json={"timeZone": "Mars/Olympus"})) == [
        ["body", "timeZone"]]
    put = await admin.put("/rule-settings", json={"timeZone": "Europe/Paris",
                                                  "quarantine": {"releaseAfter": "P7D"}})
    assert put.status_code == 200, put.text
    assert (await admin.get("/rule-settings")).json() == {
        "timeZone": "Europe/Paris",
        "quarantine": {"softFailures": 5, "softSpacing": "P1D", "releaseAfter": "P7D"}}


async def test_the_denylist_normalises_and_pages(admin: httpx.AsyncClient) -> None:
    added = await created(admin, "/denylist", {"channel": "email",
                                               "entry": " Upper@Example.COM ",
                                               "reason": "asked"})
    assert (added["entry"], added["kind"], added["reason"]) == (
        "upper@example.com", "address", "asked")
    again = await admin.post("/denylist", json={"channel": "email", "entry": "UPPER@example.com",
                                                "reason": "other"})
    assert again.status_code == 200 and again.json() == added  # unchanged
    domain = await created(admin, "/denylist", {"channel": "email", "entry": "Example.org"})
    assert (domain["entry"], domain["kind"]) == ("example.org", "domain")
    at_domain = await admin.post("/denylist", json={"channel": "email", "entry": "@example.ORG"})
    assert at_domain.status_code == 200 and at_domain.json()["kind"] == "domain"
    phone = await created(admin, "/denylist", {"channel": "sms", "entry": "+33612345678"})
    assert phone["kind"] == "address"
    assert locs(await admin.post("/denylist", json={"channel": "email", "entry": "  "})) == [
        ["body", "entry"]]
    assert locs(await admin.post("/denylist", json={"channel": "fax", "entry": "x"})) == [
        ["body", "channel"]]

    page = (await admin.get("/denylist", params={"channel": "email"})).json()
    assert [e["entry"] for e in page["items"]] == ["example.org", "upper@example.com"]
    assert page["nextCursor"] is None
    seen, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await admin.get("/denylist", params=params)).json()
        seen += [(e["channel"], e["entry"]) for e in page["items"]]
        if not (cursor := page["nextCursor"]):
            break
    assert seen == [("email", "example.org"), ("email", "upper@example.com"),
                    ("sms", "+33612345678")]

    assert (await admin.delete("/denylist/email/UPPER@Example.com")).status_code == 204
    assert (await admin.delete("/denylist/email/upper@example.com")).status_code == 404
    assert (await admin.delete("/denylist/sms/+33612345678")).status_code == 204
    assert [e["entry"] for e in (await admin.get("/denylist")).json()["items"]] == [
        "example.org"]


async def test_quarantine_by_hand_listed_and_released(admin: TenantAdmin,
                                                      pool: asyncpg.Pool) -> None:
    tenant = admin.tenant
    before = datetime.now(UTC)
    held = await created(admin, "/quarantine", {"channel": "email",
                                                "address": "Bounced@Example.com",
                                                "reason": "mailbox full for months"})
    assert held["address"] == "bounced@example.com" and held["quarantined"] is True
    release_at = datetime.fromisoformat(held["releaseAt"])
    assert before + timedelta(days=30) <= release_at < before + timedelta(days=30, minutes=1)
    await pool.execute(  # a watched address, as a sender leaves it after one soft failure
        "INSERT INTO quarantine (tenant_id, channel, address, soft_failures, last_failure_at)"
        " VALUES ($1, 'email', 'flaky@example.com', 1, now())", tenant)

    listed = (await admin.get("/quarantine")).json()["items"]
    assert [(q["address"], q["reason"]) for q in listed] == [
        ("bounced@example.com", "mailbox full for months")]
    watched = (await admin.get("/quarantine", params={"all": "true"})).json()["items"]
    assert [(q["address"], q["quarantined"], q["softFailures"]) for q in watched] == [
        ("bounced@example.com", True, 0), ("flaky@example.com", False, 1)]
    assert (await admin.get("/quarantine", params={"channel": "sms"})).json()["items"] == []

    assert (await admin.post("/quarantine/email/flaky@example.com/release")).status_code == 404
    released = await admin.post("/quarantine/email/BOUNCED@example.com/release")
    assert released.status_code == 204
    assert (await admin.get("/quarantine")).json()["items"] == []
    assert (await admin.post("/quarantine/email/bounced@example.com/release")).status_code == 404

    await admin.put("/rule-settings", json={"quarantine": {"releaseAfter": "PT12H"}})
    short = await created(admin, "/quarantine", {"channel": "push", "address": "tok-1"})
    assert datetime.fromisoformat(short["releaseAt"]) < datetime.now(UTC) + timedelta(hours=13)
    assert short["reason"] == "quarantined by an administrator"


async def test_tenants_apart_and_the_admin_key(admin: httpx.AsyncClient,
                                               pool: asyncpg.Pool) -> None:
    await created(admin, "/rules", QUIET)
    await created(admin, "/denylist", {"channel": "email", "entry": "a@b.example"})
    _, other_key = await new_tenant(pool)
    async with httpx.AsyncClient(base_url=ADMIN, timeout=30,
                                 headers={"authorization": f"Bearer {other_key}"}) as other:
        assert (await other.get("/rules")).json() == []
        assert (await other.get("/rules/r1")).status_code == 404
        assert (await other.get("/denylist")).json()["items"] == []
        assert (await created(other, "/rules", QUIET))["ruleId"] == "r1"  # ids per tenant
    async with httpx.AsyncClient(base_url=ADMIN, timeout=30) as anonymous:
        assert (await anonymous.get("/rules")).status_code == 401


async def test_a_listening_cache_hears_of_a_change_at_once(admin: TenantAdmin,
                                                           pool: asyncpg.Pool) -> None:
    tenant = admin.tenant
    cache = TenantRulesCache(pool, ttl_s=3600)
    await cache.listen(get_settings().pg_dsn)
    try:
        assert (await cache.get(tenant)).rules == {}
        await created(admin, "/rules", FATIGUE)

        async def seen() -> bool:
            return "r1" in (await cache.get(tenant)).rules
        await eventually(seen, "the new rule through a cache whose entries live an hour", 5)
        await admin.put("/rule-settings", json={"timeZone": "Asia/Tokyo"})

        async def zone() -> bool:
            return (await cache.get(tenant)).settings.timeZone == "Asia/Tokyo"
        await eventually(zone, "the new time zone", 5)
    finally:
        await cache.close()


async def test_concurrent_admins_get_distinct_ids_and_one_default(admin: TenantAdmin,
                                                                  pool: asyncpg.Pool) -> None:
    rules = await asyncio.gather(*(admin.post("/rules", json={**CAPACITY, "name": f"c{i}"})
                                   for i in range(12)))
    assert sorted(r.json()["ruleId"] for r in rules) == sorted(f"r{i}" for i in range(1, 13))
    typologies = await asyncio.gather(*(admin.post("/typologies", json={
        "name": f"T{i}", "ruleIds": [f"r{i + 1}"], "isDefault": True}) for i in range(12)))
    assert {t.status_code for t in typologies} == {201}, [t.text for t in typologies]
    defaults = await pool.fetchval(
        "SELECT count(*) FROM typologies WHERE tenant_id = $1 AND is_default", admin.tenant)
    assert defaults == 1
    deleted = await asyncio.gather(  # a rule deleted while a typology naming it is saved
        admin.delete("/rules/r12"),
        admin.post("/typologies", json={"name": "Late", "ruleIds": ["r12"]}))
    assert sorted(r.status_code for r in deleted) in ([201, 409], [204, 422])
