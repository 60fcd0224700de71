"""Audiences (segments) through the admin API: a name and a condition over the tenant's
profile paths (``schemas/conditions.v1.json``), counted and previewed on the tenant's real
profiles (never test profiles).

The definition is parsed by the condition language itself, not as a body model, so a 422
names the place in the tree: ``["body", "definition", "all", 1, "value"]``. A stored
definition is checked again whenever used: a path the profile schema no longer has is a
409 naming it, as is a stored value that no longer has its attribute's type (retyped).
Relative dates (``within``) count from now in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from services.admin.dependencies import AdminCaller, Db
from shared.adapters import audience_reader as reader
from shared.adapters import audience_store as store
from shared.adapters.profile_schema_store import load_schema
from shared.domain.audiences import jsonable
from shared.domain.conditions import ConditionError, parse_condition
from shared.domain.conditions.checking import Checked

router = APIRouter(prefix="/admin/v1/audiences", tags=["audiences"])
MAX_PREVIEW = 1000


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class AudienceIn(_Model):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True,
                              extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    definition: Any = Field(description="a condition tree: schemas/conditions.v1.json")


class AudienceOut(_Model):
    audience_id: str
    name: str
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class CountOut(_Model):
    audience_id: str
    count: int
    counted_at: datetime


class Member(_Model):
    profile_id: str
    fields: dict[str, Any] = Field(description="the values of the paths the definition tests")


class PreviewOut(_Model):
    audience_id: str
    profiles: list[Member]


def _problems(error: ConditionError, prefix: list[str]) -> list[dict[str, Any]]:
    return [{"loc": [*prefix, *p.loc], "msg": p.msg, "type": "condition"}
            for p in error.problems]


async def _checked_new(db: asyncpg.Connection, tenant: str, definition: Any
                       ) -> tuple[dict[str, Any], Checked]:
    """A definition from a request: 422 naming the place in the tree."""
    schema = (await load_schema(db, tenant)).schema
    try:
        checked = reader.check_definition(definition, schema)
    except ConditionError as error:
        raise HTTPException(422, _problems(error, ["body", "definition"])) from None
    # as the language reads it: defaults left out, values as JSON
    stored = parse_condition(definition).model_dump(mode="json", exclude_none=True)
    return stored, checked


async def _stored(db: asyncpg.Connection, tenant: str, audience_id: str
                  ) -> tuple[dict[str, Any], Checked]:
    """A stored audience checked against the current schema: 404, or 409 naming a path
    that is gone or no longer fits."""
    row = await store.get_audience(db, tenant, audience_id)
    if row is None:
        raise HTTPException(404, f"no audience {audience_id!r}")
    schema = (await load_schema(db, tenant)).schema
    try:
        return row, reader.check_definition(row["definition"], schema)
    except ConditionError as error:
        raise HTTPException(409, [{**p, "msg": f"the profile schema changed: {p['msg']}"}
                                  for p in _problems(error, ["definition"])]) from None


def _value(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else jsonable(value)


async def _run(action: Any) -> Any:
    try:
        return await action
    except asyncpg.DataError as error:  # a stored value the cast refuses: retyped attribute
        raise HTTPException(409, "a profile holds a value that no longer has its path's type"
                                 f" (an attribute retyped? PostgreSQL: {error})") from None


@router.post("", status_code=201, response_model=AudienceOut, response_model_by_alias=True)
async def create_audience(body: AudienceIn, caller: AdminCaller, db: Db) -> AudienceOut:
    stored, _ = await _checked_new(db, caller.tenant, body.definition)
    return AudienceOut.model_validate(
        await store.create_audience(db, caller.tenant, body.name, stored))


@router.get("", response_model=list[AudienceOut], response_model_by_alias=True)
async def list_audiences(caller: AdminCaller, db: Db) -> list[AudienceOut]:
    return [AudienceOut.model_validate(r) for r in await store.list_audiences(db, caller.tenant)]


@router.get("/{audience_id}", response_model=AudienceOut, response_model_by_alias=True)
async def get_audience(audience_id: str, caller: AdminCaller, db: Db) -> AudienceOut:
    row = await store.get_audience(db, caller.tenant, audience_id)
    if row is None:
        raise HTTPException(404, f"no audience {audience_id!r}")
    return AudienceOut.model_validate(row)


@router.put("/{audience_id}", response_model=AudienceOut, response_model_by_alias=True)
async def update_audience(audience_id: str, body: AudienceIn, caller: AdminCaller, db: Db
                          ) -> AudienceOut:
    stored, _ = await _checked_new(db, caller.tenant, body.definition)
    row = await store.update_audience(db, caller.tenant, audience_id, body.name, stored)
    if row is None:
        raise HTTPException(404, f"no audience {audience_id!r}")
    return AudienceOut.model_validate(row)


@router.delete("/{audience_id}", status_code=204)
async def delete_audience(audience_id: str, caller: AdminCaller, db: Db) -> Response:
    if not await store.delete_audience(db, caller.tenant, audience_id):
        raise HTTPException(404, f"no audience {audience_id!r}")
    return Response(status_code=204)


@router.get("/{audience_id}/count", response_model=CountOut, response_model_by_alias=True)
async def count_audience(audience_id: str, caller: AdminCaller, db: Db) -> CountOut:
    """How many of the tenant's profiles are members now."""
    _, checked = await _stored(db, caller.tenant, audience_id)
    now = datetime.now(UTC)
    count = await _run(reader.count_members(db, reader.audience_query(caller.tenant, checked,
                                                                      now)))
    return CountOut(audience_id=audience_id, count=count, counted_at=now)


@router.get("/{audience_id}/preview", response_model=PreviewOut, response_model_by_alias=True)
async def preview_audience(
    audience_id: str, caller: AdminCaller, db: Db,
    limit: Annotated[int, Query(ge=1, le=MAX_PREVIEW)] = 20,
) -> PreviewOut:
    """The first ``limit`` members by profile id, with the values of the paths tested."""
    _, checked = await _stored(db, caller.tenant, audience_id)
    query = reader.audience_query(caller.tenant, checked, datetime.now(UTC))
    members = await _run(reader.preview_members(db, query, limit))
    return PreviewOut(audience_id=audience_id, profiles=[
        Member(profile_id=m["profileId"],
               fields={k: _value(v) for k, v in m["fields"].items()}) for m in members])
