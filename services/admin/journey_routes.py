"""Journey drafts through the admin API: written as JSON (``schemas/journeys/
definition.v1.json``), refused with a 422 naming the field when the shape is wrong, and
validated against the graph's rules, the tenant's profile paths, its journey event types,
its http allow-list (/admin/v1/journey-http-hosts: each http node's host must be on it)
and its journey messages (event configurations JMS…, authored through /admin/v1/events:
each action's must exist, be of the node's channel and have a live version), every
problem with its node (errors block publishing, warnings do not).

    PUT    /admin/v1/journeys/{journeyId}           the draft (201 created, 200 replaced)
    GET    /admin/v1/journeys                       the tenant's journeys
    GET    /admin/v1/journeys/{journeyId}           one, with its draft
    POST   /admin/v1/journeys/{journeyId}/validate  {"problems": [...], "publishable": …}
    DELETE /admin/v1/journeys/{journeyId}           a draft (204)
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, HTTPException, Path, Response
from pydantic import BaseModel, ValidationError

from services.admin.dependencies import AdminCaller, Db, body_errors
from shared.adapters import journey_definition_store as store
from shared.adapters import journey_event_store, journey_http_hosts_store
from shared.adapters.catalog_store import journey_messages
from shared.adapters.profile_schema_store import load_schema
from shared.domain.audiences import profile_paths
from shared.domain.journeys.definition import Action, JourneyDefinition, parse_definition
from shared.domain.journeys.validation import errors, validate

router = APIRouter(prefix="/admin/v1/journeys", tags=["journeys"])
JourneyId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]


class ProblemOut(BaseModel):
    node: str
    severity: str
    message: str


class JourneyOut(BaseModel):
    journeyId: str
    name: str
    state: str
    createdAt: datetime
    updatedAt: datetime
    definition: dict[str, Any] | None = None
    problems: list[ProblemOut] | None = None
    publishable: bool | None = None


def _parsed(journey_id: str, body: dict[str, Any]) -> JourneyDefinition:
    body = {**body, "id": body.get("id", journey_id)}
    try:
        definition = parse_definition(body)
    except ValidationError as error:
        raise body_errors(error) from None
    if definition.id != journey_id:
        raise HTTPException(422, f"the body's id {definition.id!r} is not the path's"
                                 f" {journey_id!r}")
    return definition


async def _checked(connection: asyncpg.Connection, tenant: str,
                   definition: JourneyDefinition) -> tuple[list[ProblemOut], bool]:
    schema = (await load_schema(connection, tenant)).schema
    event_types = await journey_event_store.types_of(connection, tenant)
    messages = await journey_messages(
        connection, tenant, (n.message for n in definition.nodes if isinstance(n, Action)))
    hosts = await journey_http_hosts_store.entries(connection, tenant)
    problems = validate(definition, messages=messages, paths=profile_paths(schema),
                        journey_events=set(event_types), event_types=event_types,
                        http_hosts=hosts)
    return ([ProblemOut(**p.as_json()) for p in problems], not errors(problems))


def _out(row: dict[str, Any], problems: list[ProblemOut] | None = None,
         publishable: bool | None = None, with_definition: bool = True) -> JourneyOut:
    return JourneyOut(journeyId=row["journey_id"], name=row["name"], state=row["state"],
                      createdAt=row["created_at"], updatedAt=row["updated_at"],
                      definition=row["draft"] if with_definition else None,
                      problems=problems, publishable=publishable)


@router.put("/{journey_id}", response_model=JourneyOut, response_model_exclude_none=True)
async def put_journey(journey_id: JourneyId, caller: AdminCaller, connection: Db,
                      response: Response,
                      body: Annotated[dict[str, Any], Body(description="the definition")]
                      ) -> JourneyOut:
    """Create or replace the journey's draft; the answer carries its problems."""
    definition = _parsed(journey_id, body)
    draft = definition.model_dump(mode="json", by_alias=True, exclude_none=True)
    row, created = await store.put_draft(connection, caller.tenant, journey_id,
                                         definition.name, draft)
    response.status_code = 201 if created else 200
    return _out(row, *await _checked(connection, caller.tenant, definition))


@router.get("", response_model=list[JourneyOut], response_model_exclude_none=True)
async def list_journeys(caller: AdminCaller, connection: Db) -> list[JourneyOut]:
    return [_out(r, with_definition=False)
            for r in await store.list_journeys(connection, caller.tenant)]


async def _row(connection: asyncpg.Connection, tenant: str, journey_id: str
               ) -> dict[str, Any]:
    row = await store.get(connection, tenant, journey_id)
    if row is None:
        raise HTTPException(404, f"no journey {journey_id!r}: create it with PUT")
    return row


@router.get("/{journey_id}", response_model=JourneyOut, response_model_exclude_none=True)
async def get_journey(journey_id: JourneyId, caller: AdminCaller, connection: Db
                      ) -> JourneyOut:
    return _out(await _row(connection, caller.tenant, journey_id))


@router.post("/{journey_id}/validate", response_model=JourneyOut,
             response_model_exclude_none=True)
async def validate_journey(journey_id: JourneyId, caller: AdminCaller, connection: Db
                           ) -> JourneyOut:
    """Every problem of the stored draft, with its node; ``publishable`` when none is an
    error. The profile schema may have changed since the draft was written."""
    row = await _row(connection, caller.tenant, journey_id)
    definition = parse_definition(row["draft"])
    return _out(row, *await _checked(connection, caller.tenant, definition),
                with_definition=False)


@router.delete("/{journey_id}", status_code=204)
async def delete_journey(journey_id: JourneyId, caller: AdminCaller, connection: Db) -> None:
    """A journey that never ran, or whose versions have all ended; one with a live or
    paused version (a test run included) is a 409: stop it first."""
    running = await connection.fetchval(
        "SELECT count(*) FROM journey_versions WHERE tenant_id = $1 AND journey_id = $2"
        " AND state IN ('live', 'paused')", caller.tenant, journey_id)
    if running:
        raise HTTPException(409, f"journey {journey_id!r} has {running} running version(s):"
                                 f" stop them first (POST /admin/v1/journeys/{journey_id}/stop"
                                 " and …/test/stop)")
    if not await store.delete_draft(connection, caller.tenant, journey_id):
        raise HTTPException(404, f"no draft journey {journey_id!r}")
