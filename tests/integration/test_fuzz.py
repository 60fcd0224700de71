"""Fuzzing the HTTP APIs from their live OpenAPI specs (schemathesis): whatever a caller
sends to the gateway or to the admin API, the answer is never a 5xx; what the admin API
answers with a documented status also matches the schema documented for it.

Everything runs in a tenant of its own, created here and removed afterwards: the fuzzer
creates, edits, publishes and deletes events and test profiles, and must touch nothing
the other tests (or other people on the same stack) keep in the default tenant.

Bounded and reproducible: ``derandomize`` makes Hypothesis draw the same cases on every
run; each operation gets its schema examples, schemathesis' coverage cases and at most
``MAX_EXAMPLES`` fuzzed ones.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import requests
import schemathesis
from _pytest.nodeid import coerce_node_id
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from shared.adapters.key_store import create_key, create_tenant
from shared.domain.api_keys import Scope
from tests.integration.conftest import GATEWAY, eventually, publish_event
from tests.integration.conftest import settings as stack_settings

ADMIN_ROOT = f"http://127.0.0.1:{stack_settings.admin_port}"
MAX_EXAMPLES = 50
FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))

# Where a tenant's rows live; emptied for the fuzz tenant afterwards (messages go with
# their event configuration, consent with its profile, API keys with the tenant).
_TENANT_TABLES = ("event_configs", "profiles", "event_status", "deliveries",
                  "idempotency_keys", "held_events", "profile_schemas", "tenant_retention")


@dataclass(frozen=True)
class Fuzz:
    """A tenant of the fuzzer's own, its real keys, and real things to aim at."""

    tenant: str
    ingest_key: str
    admin_key: str
    gateway_event: str  # published, event-based email: the body carries the address
    admin_event: str  # the same, for the admin fuzzer to change as it likes
    test_profile: str
    pkey: str  # of an event the gateway accepted for ``gateway_event``

    @staticmethod
    def bearer(key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"}


@pytest.fixture(scope="session")
async def fuzz(pool: asyncpg.Pool) -> AsyncIterator[Fuzz]:
    tenant = f"fuzz-{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, tenant, "schemathesis")
        # A high rate: the fuzzer must meet the API, not the key's rate limit (429).
        ingest_key = await create_key(connection, tenant, Scope.INGEST, "fuzz",
                                      rate_per_s=1_000_000)
        admin_key = await create_key(connection, tenant, Scope.ADMIN, "fuzz",
                                     rate_per_s=1_000_000)
    gateway_event = await publish_event(pool, "event", tenant=tenant)
    admin_event = await publish_event(pool, "event", tenant=tenant)
    test_profile = "fuzz-tester"
    async with httpx.AsyncClient(timeout=30) as client:
        put = await client.put(f"{ADMIN_ROOT}/admin/v1/test-profiles/{test_profile}",
                               headers=Fuzz.bearer(admin_key),
                               json={"email": "fuzz-tester@example.com", "firstName": "Fuzz",
                                     "sampleCtx": {"item": "Boots", "price": 9.5}})
        assert put.status_code == 200, put.text

        async def accepted() -> httpx.Response | None:  # the endpoint is up within 2 s
            response = await client.post(
                f"{GATEWAY}/v1/events/{gateway_event}", headers=Fuzz.bearer(ingest_key),
                json={"email": "fuzz@example.com", "ctx": {"item": "x"}})
            return response if response.status_code == 202 else None

        pkey = (await eventually(accepted, "the fuzz event's endpoint")).json()["pKey"]
    yield Fuzz(tenant, ingest_key, admin_key, gateway_event, admin_event, test_profile, pkey)
    async with pool.acquire() as connection, connection.transaction():
        for table in _TENANT_TABLES:
            await connection.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant)
        await connection.execute("DELETE FROM tenants WHERE tenant_id = $1", tenant)


def _spec(url: str) -> dict[str, Any]:
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    spec: dict[str, Any] = response.json()
    return spec


def _add_examples(spec: dict[str, Any], examples: dict[str, str]) -> None:
    """Give every path parameter named in ``examples`` that value as its example: the
    examples phase then calls each operation once on something that exists."""
    for operations in spec["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in examples:
                    parameter["example"] = examples[parameter["name"]]


def _aim_at(schema: schemathesis.BaseSchema, path_parameters: dict[str, str],
            body_fields: dict[str, str] | None = None) -> None:
    """Half the generated cases get real ids in place of generated ones: unknown ids (404)
    are worth fuzzing, but so is everything behind an id that exists."""

    @schema.hook
    def flatmap_path_parameters(
        _context: schemathesis.HookContext, parameters: dict[str, Any] | None
    ) -> st.SearchStrategy[dict[str, Any] | None]:
        real = {k: v for k, v in path_parameters.items() if k in (parameters or {})}
        if not real:
            return st.just(parameters)
        return st.sampled_from([parameters, {**(parameters or {}), **real}])

    @schema.hook
    def flatmap_body(_context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
        real = {k: v for k, v in (body_fields or {}).items()
                if isinstance(body, dict) and k in body}
        if not real:
            return st.just(body)
        return st.sampled_from([body, {**body, **real}])


@pytest.fixture(scope="session")
def gateway_schema(fuzz: Fuzz) -> schemathesis.BaseSchema:
    spec = _spec(f"{GATEWAY}/openapi.json")
    # The ingestion routes read their body themselves (its model depends on the event), so
    # the spec has no request body for them: give them the real event's own JSON Schema, as
    # GET /v1/events/{eventId}/schema serves it, for the fuzzer to build bodies from.
    body = httpx.get(f"{GATEWAY}/v1/events/{fuzz.gateway_event}/schema",
                     headers=Fuzz.bearer(fuzz.ingest_key), timeout=10).json()
    body = orjson.loads(orjson.dumps(body).replace(b'"#/$defs/', b'"#/components/schemas/'))
    spec["components"]["schemas"].update(body.pop("$defs", {}))
    bodies = {"/v1/events/{event_id}": body,
              "/v1/events/{event_id}/batch": {
                  "type": "object", "required": ["events"],
                  "properties": {"events": {"type": "array", "items": body}}}}
    for path, schema in bodies.items():
        spec["paths"][path]["post"]["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": copy.deepcopy(schema)}}}
    _add_examples(spec, {"event_id": fuzz.gateway_event, "pkey": fuzz.pkey})
    schema = schemathesis.openapi.from_dict(
        spec, config=schemathesis.Config.from_dict({"base-url": GATEWAY}))
    _aim_at(schema, {"event_id": fuzz.gateway_event, "pkey": fuzz.pkey})
    return schema


@pytest.fixture(scope="session")
def admin_schema(fuzz: Fuzz) -> schemathesis.BaseSchema:
    spec = _spec(f"{ADMIN_ROOT}/openapi.json")
    _add_examples(spec, {"event_id": fuzz.admin_event, "profile_id": fuzz.test_profile})
    schema = schemathesis.openapi.from_dict(
        spec, config=schemathesis.Config.from_dict({"base-url": ADMIN_ROOT}))
    _aim_at(schema, {"event_id": fuzz.admin_event, "profile_id": fuzz.test_profile},
            {"profileId": fuzz.test_profile})

    @schema.hook
    def flatmap_case(
        _context: schemathesis.HookContext, case: schemathesis.Case
    ) -> st.SearchStrategy[schemathesis.Case]:
        """PUT /admin/v1/events/{eventId} wants the body's eventId to be the path's: in
        half the cases it is, and the update goes past that check."""
        path_id = (case.path_parameters or {}).get("event_id")
        if path_id is None or not isinstance(case.body, dict) or "eventId" not in case.body:
            return st.just(case)

        def aligned(align: bool) -> schemathesis.Case:
            if align:
                case.body = {**case.body, "eventId": path_id}
            return case

        return st.booleans().map(aligned)

    return schema


@pytest.fixture(scope="session")
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def _give_items_a_nodeid_attribute() -> None:
    """schemathesis 4.32.5's ``from_fixture`` names each operation's subtest by rewriting the
    pytest item's private ``_nodeid``, which pytest 9.2 replaced with a structured ``_id``
    ("'Function' object has no attribute '_nodeid'"). Until schemathesis follows, serve
    ``_nodeid`` as a view of ``_id``; nothing in pytest itself reads it any more."""
    if hasattr(pytest.Function, "_nodeid"):
        return

    def get(item: pytest.Function) -> str:
        return item.nodeid

    def set_(item: pytest.Function, nodeid: str) -> None:
        item._id = coerce_node_id(nodeid)

    pytest.Function._nodeid = property(get, set_)  # type: ignore[attr-defined]


_give_items_a_nodeid_attribute()
gateway = schemathesis.pytest.from_fixture("gateway_schema")
admin = schemathesis.pytest.from_fixture("admin_schema")


@FUZZ
@gateway.parametrize()
def test_the_gateway_answers_no_5xx(
    case: schemathesis.Case, fuzz: Fuzz, session: requests.Session
) -> None:
    case.call_and_validate(session=session, headers=Fuzz.bearer(fuzz.ingest_key),
                           checks=[not_a_server_error])


@FUZZ
@admin.parametrize()
def test_the_admin_api_answers_no_5xx_and_as_documented(
    case: schemathesis.Case, fuzz: Fuzz, session: requests.Session
) -> None:
    case.call_and_validate(session=session, headers=Fuzz.bearer(fuzz.admin_key),
                           checks=[not_a_server_error, response_schema_conformance])
