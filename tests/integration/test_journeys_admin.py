"""Journey drafts through the admin API and the CLI on the real stack, each test in a tenant
of its own: the seed journey stored and publishable, a malformed one refused with the
field, graph problems answered with their node, conditions checked against the tenant's
profile paths, tenants apart."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from shared.adapters.key_store import create_key, create_tenant
from shared.domain.api_keys import Scope
from tests.integration.conftest import ADMIN, ROOT
from tests.integration.test_journey_messages import NAMES as JMS_NAMES
from tests.integration.test_journey_messages import journey_message
from tests.unit.test_journey_advance import SEED as UNIT_SEED
from tests.unit.test_journey_events import PURCHASE

# The seed journey with journey event types and journey messages (JMS…) of the tenant's
# (created by the fixture).
SEED = copy.deepcopy(UNIT_SEED)
SEED["nodes"][4]["branches"][0]["event"]["eventId"] = "JEVpurchase"
SEED["exit"] = [{"eventId": "JEVoptOut"}]
for _node in SEED["nodes"]:
    if _node["id"] in JMS_NAMES:
        _node["message"] = JMS_NAMES[_node["id"]]
OPT_OUT = {"fields": [{"id": "customerId", "type": "string"}], "profileKey": "customerId"}

WHERE = {"id": "where", "type": "condition", "else": "done",
         "branches": [{"when": {"path": "city", "op": "eq", "value": "Seattle"},
                       "next": "done"}]}


async def _admin(pool: asyncpg.Pool) -> tuple[str, str]:
    name = f"jad-{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, name, "journey admin tests")
        return name, await create_key(connection, name, Scope.ADMIN, "tests")


@pytest.fixture
async def admin(pool: asyncpg.Pool) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    _name, key = await _admin(pool)
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"{ADMIN}/journeys", timeout=30,
                                 headers=headers) as client:
        for event_id, body in (("JEVpurchase", PURCHASE), ("JEVoptOut", OPT_OUT)):
            created = await client.put(f"{ADMIN}/journey-events/{event_id}", json=body)
            assert created.status_code == 201, created.text
        for node in SEED["nodes"]:
            if node["id"] in JMS_NAMES:
                await journey_message(client, node["message"], node["type"])
        yield client, key


async def test_the_seed_journey_is_stored_publishable_and_read_back(
        admin: tuple[httpx.AsyncClient, str]) -> None:
    client, _key = admin
    created = await client.put("/seed", json=SEED)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["publishable"] is True and body["state"] == "draft"
    assert {p["severity"] for p in body.get("problems", [])} <= {"warning"}
    again = await client.put("/seed", json=SEED)
    assert again.status_code == 200
    read = (await client.get("/seed")).json()
    assert read["definition"]["nodes"][2]["timeout"] == {"after": "P1D", "next": "reminder"}
    assert [j["journeyId"] for j in (await client.get(f"{ADMIN}/journeys")).json()] == ["seed"]


async def test_a_malformed_journey_is_422_naming_the_field(
        admin: tuple[httpx.AsyncClient, str]) -> None:
    client, _key = admin
    bad = copy.deepcopy(SEED)
    bad["nodes"][3]["type"] = "teleport"
    refused = await client.put("/seed", json=bad)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"][:3] == ["body", "nodes", 3]
    assert (await client.put("/other", json=SEED)).status_code == 422  # id mismatch
    assert (await client.get("/seed")).status_code == 404


async def test_graph_and_condition_problems_come_with_their_node(
        admin: tuple[httpx.AsyncClient, str]) -> None:
    client, _key = admin
    data = copy.deepcopy(SEED)
    data["nodes"][4]["timeout"] = {"after": "P91D"}  # buy: over 90 days
    data["nodes"].append({"id": "island", "type": "end"})
    data["nodes"].append({**WHERE, "branches": [
        {"when": {"path": "attributes.tier", "op": "eq", "value": "gold"}, "next": "done"}]})
    data["nodes"][5]["next"] = "where"  # thanks → where → done
    stored = (await client.put("/seed", json=data)).json()
    problems = {(p["node"], p["severity"]): p["message"] for p in stored["problems"]}
    assert problems[("buy", "error")] == "the timeout is over 90 days"
    assert problems[("island", "error")] == "no path from the entry reaches it"
    assert "attributes.tier" in problems[("where", "error")] or \
        "unknown" in problems[("where", "error")]
    assert stored["publishable"] is False
    validated = (await client.post("/seed/validate")).json()
    assert validated["problems"] == stored["problems"] and not validated["publishable"]


async def test_a_condition_on_a_known_path_is_fine_and_tenants_are_apart(
        admin: tuple[httpx.AsyncClient, str], pool: asyncpg.Pool) -> None:
    client, _key = admin
    data = copy.deepcopy(SEED)
    data["nodes"].append(WHERE)
    data["nodes"][5]["next"] = "where"
    assert (await client.put("/seed", json=data)).json()["publishable"] is True
    _other, other_key = await _admin(pool)
    async with httpx.AsyncClient(base_url=f"{ADMIN}/journeys", timeout=30, headers={
            "authorization": f"Bearer {other_key}"}) as other:
        assert (await other.get("/seed")).status_code == 404
        assert (await other.get(f"{ADMIN}/journeys")).json() == []
    assert (await client.delete("/seed")).status_code == 204
    assert (await client.get("/seed")).status_code == 404


def test_the_cli_puts_and_validates_with_a_table(admin: tuple[httpx.AsyncClient, str],
                                                 tmp_path: Path) -> None:
    _client, key = admin
    data: dict[str, Any] = copy.deepcopy(SEED)
    data["nodes"][4]["timeout"] = {"after": "P91D"}
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(data))
    env = {**os.environ, "PARCOURS_ADMIN_KEY": key}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "services.cli", "journeys", *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    put = cli("put", str(path))
    assert put.returncode == 0, put.stderr
    assert "the timeout is over 90 days" in put.stdout and "not publishable" in put.stdout
    validated = cli("validate", "seed")
    assert validated.returncode == 1 and "buy" in validated.stdout
    assert "seed" in cli("list").stdout
    refund = tmp_path / "refund.json"
    refund.write_text(json.dumps({**PURCHASE, "eventId": "JEVrefund"}))
    listed = subprocess.run([sys.executable, "-m", "services.cli", "journey-events", "put",
                             str(refund)], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "JEVrefund" in listed.stdout and "customerId" in listed.stdout


async def test_journey_event_types_are_stored_and_a_bad_one_is_422_naming_the_field(
        admin: tuple[httpx.AsyncClient, str]) -> None:
    client, _key = admin
    types = (await client.get(f"{ADMIN}/journey-events")).json()
    assert [t["eventId"] for t in types] == ["JEVoptOut", "JEVpurchase"]
    one = (await client.get(f"{ADMIN}/journey-events/JEVpurchase")).json()
    assert one["definition"]["profileKey"] == "customerId"
    bad_condition = {**PURCHASE, "condition": {"path": "event.amount", "op": "eq",
                                               "value": "ten"}}
    refused = await client.put(f"{ADMIN}/journey-events/JEVpurchase", json=bad_condition)
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][:2] == [
        "body", "condition"]
    no_key = {**PURCHASE, "profileKey": "amount"}
    assert (await client.put(f"{ADMIN}/journey-events/JEVx", json=no_key)).status_code == 422
    assert (await client.put(f"{ADMIN}/journey-events/EVTx", json=PURCHASE)).status_code == 422


async def test_a_journey_naming_an_unknown_journey_event_is_not_publishable(
        admin: tuple[httpx.AsyncClient, str]) -> None:
    client, _key = admin
    data = copy.deepcopy(SEED)
    data["nodes"][4]["branches"][0]["event"]["eventId"] = "JEVrefund"
    stored = (await client.put("/seed", json=data)).json()
    assert {"node": "buy", "severity": "error",
            "message": "no journey event 'JEVrefund'"} in stored["problems"]
    assert (await client.delete(f"{ADMIN}/journey-events/JEVoptOut")).status_code == 204
    validated = (await client.post("/seed/validate")).json()
    assert {"node": "exit", "severity": "error",
            "message": "no journey event 'JEVoptOut'"} in validated["problems"]
