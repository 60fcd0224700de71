"""The profile API (a ``profiles`` key): write, read, look up, export and erase the
tenant's profiles, their devices and consent.

Bodies are checked against the tenant's profile schema (``/admin/v1/profile-schema``),
with exact decimals: parsed here from the bytes, not by FastAPI. A write is committed
before its answer goes out, so an event accepted after a 200 sees it. Test profiles are
the admin API's: writing or erasing one here is a 409, reading one a 404.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, ValidationError

from services.gateway.wiring import Gateway
from shared.adapters import (
    consent_store,
    personal_data,
    profile_documents,
    profile_store,
)
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.adapters.profile_schema_store import TenantSchema
from shared.api_auth import Caller, require
from shared.domain.api_keys import Scope
from shared.domain.exact import exact_json
from shared.domain.profiles import (
    PROFILE_ID,
    ProfileWrite,
    parse_body,
    to_write,
)

MAX_BODY_BYTES = 256 * 1024
MAX_BATCH = 1000
MAX_BATCH_BYTES = 16 * 1024 * 1024

router = APIRouter(prefix="/v1/profiles", tags=["profiles"])
ProfilesCaller = Annotated[Caller, Depends(require(Scope.PROFILES))]
ProfileId = Annotated[str, Path(pattern=PROFILE_ID, description="the tenant's id of the profile")]


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _json(body: Any, status: int = 200) -> Response:
    """Decimals as JSON numbers with their exact digits."""
    return Response(exact_json(body), status, media_type="application/json")


_UNDECLARED = ("not an attribute of this tenant's profile schema; declare it with PUT"
               " /admin/v1/profile-schema")


def _invalid(errors: list[Any], prefix: tuple[str | int, ...] = ("body",)) -> list[Any]:
    """pydantic's errors, located in the request; an unknown attribute says where to
    declare it."""
    return [{"type": e["type"], "loc": [*prefix, *e["loc"]],
             "msg": _UNDECLARED if e["type"] == "extra_forbidden" and e["loc"][:1] == (
                 "attributes",) else e["msg"]} for e in errors]


async def _body(request: Request, limit: int) -> Any:
    """The request's JSON, decimals exact; 415, 413 or 422 otherwise."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/")
                                            and media.endswith("+json")):
        raise HTTPException(415, "send JSON: content-type: application/json")
    body = await request.body()
    if len(body) > limit:
        raise HTTPException(413, f"body is {len(body)} bytes; the limit is {limit}")
    try:
        return parse_body(body)
    except (ValueError, RecursionError) as error:
        raise RequestValidationError([{"type": "json_invalid", "loc": ["body"],
                                       "msg": f"not JSON: {error}"}]) from None


def _validated(tenant_schema: TenantSchema, body: Any) -> BaseModel:
    try:
        return tenant_schema.model.model_validate(body)
    except ValidationError as error:
        raise RequestValidationError(_invalid(error.errors())) from None


async def _document(connection: asyncpg.Connection, tenant: str,
                    tenant_schema: TenantSchema, row: dict[str, Any]) -> dict[str, Any]:
    """The profile as the API shows it: typed attributes, consent and subscriptions."""
    return await profile_documents.document(connection, tenant, tenant_schema.schema, row)


async def _read(connection: asyncpg.Connection, tenant: str, tenant_schema: TenantSchema,
                profile_id: str) -> dict[str, Any] | None:
    row = await profile_store.read_profile(connection, tenant, profile_id)
    if row is None:
        return None
    return await _document(connection, tenant, tenant_schema, row)


def _refusal(result: profile_store.WriteResult, profile_id: str) -> HTTPException:
    if result.outcome == "test":
        return HTTPException(409, f"{profile_id!r} is a test profile: test profiles are"
                                  " written through the admin API (/admin/v1/test-profiles)")
    return HTTPException(409, f"a later write of {profile_id!r} (at"
                              f" {result.written_at.isoformat() if result.written_at else '?'})"
                              " was applied already: the later write wins (its consent"
                              " changes count where newer than the consent they change)")


async def _write(request: Request, caller: Caller, profile_id: str, replace: bool
                 ) -> Response:
    gateway = _gateway(request)
    body = await _body(request, MAX_BODY_BYTES)
    try:
        tenant_schema = await gateway.profile_schemas.get(caller.tenant)
        write = to_write(profile_id, _validated(tenant_schema, body), replace=replace)
        async with gateway.pool.acquire() as connection:
            async with connection.transaction():
                result = await profile_store.apply_profile_write(
                    connection, caller.tenant, write, datetime.now(UTC))
            if result.outcome in ("test", "stale"):
                raise _refusal(result, profile_id)
            document = await _read(connection, caller.tenant, tenant_schema, profile_id)
    except DB_UNAVAILABLE as error:
        raise HTTPException(503, "the profile store is unavailable; retry",
                            headers={"Retry-After": "1"}) from error
    return _json(document, 201 if result.outcome == "created" else 200)


_BODY_DOC = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "description": (
        "email, mobilePhone, firstName, lastName, city, birthDate, timeZone (IANA), locale;"
        " attributes (declared in /admin/v1/profile-schema); pushDevices; consent"
        " {email|sms|push: {marketing, blocked}}; topics {topic: true|false};"
        " consentSource")}}}}}


@router.put("/{profile_id}", openapi_extra=_BODY_DOC, responses={
    201: {"description": "created"}, 409: {"description": "a test profile's id"}})
async def put_profile(profile_id: ProfileId, request: Request, caller: ProfilesCaller
                      ) -> Response:
    """Create or replace a profile: fields and attributes left out are cleared, devices
    replaced; consent and subscriptions change only where the body says."""
    return await _write(request, caller, profile_id, replace=True)


@router.patch("/{profile_id}", openapi_extra=_BODY_DOC)
async def patch_profile(profile_id: ProfileId, request: Request, caller: ProfilesCaller
                        ) -> Response:
    """Merge into a profile (created when missing): what is left out stays, null clears a
    field or removes an attribute."""
    return await _write(request, caller, profile_id, replace=False)


@router.get("")
async def lookup_profiles(
    request: Request, caller: ProfilesCaller,
    email: Annotated[str | None, Query(max_length=254)] = None,
    mobile_phone: Annotated[str | None, Query(alias="mobilePhone", max_length=32)] = None,
) -> Response:
    """Real profiles with this email address (any case) or mobile phone."""
    if (email is None) == (mobile_phone is None):
        raise RequestValidationError([{"type": "missing", "loc": ["query", "email"],
                                       "msg": "give exactly one of email or mobilePhone"}])
    gateway = _gateway(request)
    tenant_schema = await gateway.profile_schemas.get(caller.tenant)
    async with gateway.pool.acquire() as connection:
        rows = await profile_store.lookup_profiles(connection, caller.tenant, email=email,
                                                   mobile_phone=mobile_phone)
        found = [await _document(connection, caller.tenant, tenant_schema, row)
                 for row in rows]
    return _json({"profiles": found})


@router.get("/{profile_id}")
async def get_profile(profile_id: ProfileId, request: Request, caller: ProfilesCaller
                      ) -> Response:
    gateway = _gateway(request)
    tenant_schema = await gateway.profile_schemas.get(caller.tenant)
    async with gateway.pool.acquire() as connection:
        document = await _read(connection, caller.tenant, tenant_schema, profile_id)
    if document is None:
        raise HTTPException(404, f"no profile {profile_id!r}")
    return _json(document)


@router.get("/{profile_id}/consent/history")
async def consent_history(profile_id: ProfileId, request: Request, caller: ProfilesCaller
                          ) -> Response:
    """Every consent and subscription change, oldest first."""
    async with _gateway(request).pool.acquire() as connection:
        if await profile_store.read_profile(connection, caller.tenant, profile_id) is None:
            raise HTTPException(404, f"no profile {profile_id!r}")
        history = await consent_store.read_history(connection, caller.tenant, profile_id)
    return _json({"profileId": profile_id, "changes": history})


@router.get("/{profile_id}/export")
async def export_profile(profile_id: ProfileId, request: Request, caller: ProfilesCaller
                         ) -> Response:
    """Everything held about the profile (an access request), by store."""
    gateway = _gateway(request)
    tenant_schema = await gateway.profile_schemas.get(caller.tenant)
    async with gateway.pool.acquire() as connection:
        exported = await personal_data.export_profile(connection, caller.tenant, profile_id)
        if exported.get("profile") is None:
            raise HTTPException(404, f"no profile {profile_id!r}")
        exported["profile"] = await _document(connection, caller.tenant, tenant_schema,
                                              exported["profile"])
    return _json({"profileId": profile_id, "exportedAt": datetime.now(UTC), **exported})


@router.delete("/{profile_id}")
async def erase_profile(profile_id: ProfileId, request: Request, caller: ProfilesCaller
                        ) -> Response:
    """Erase the profile and everything held about it (one transaction); says what was
    removed. Kafka topics keep their records until their retention ends (README)."""
    async with _gateway(request).pool.acquire() as connection:
        if await profile_store.is_test_profile(connection, caller.tenant, profile_id):
            raise HTTPException(409, f"{profile_id!r} is a test profile: delete it through"
                                     " the admin API (/admin/v1/test-profiles)")
        removed = await personal_data.erase_profile(connection, caller.tenant, profile_id)
    if not any(removed.values()):
        raise HTTPException(404, f"no profile {profile_id!r}")
    return _json({"profileId": profile_id, "erased": True, "removed": removed})


class _Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown field is a 422 naming it
    mode: Literal["merge", "replace"] = "merge"
    profiles: list[dict[str, Any]]


def _item(index: int, status: int, profile_id: Any = None, detail: Any = None
          ) -> dict[str, Any]:
    return {"index": index, "profileId": profile_id, "status": status, "detail": detail}


@router.post("/batch", openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "properties": {
        "mode": {"enum": ["merge", "replace"]},
        "profiles": {"type": "array", "maxItems": MAX_BATCH, "items": {"type": "object"}}},
        "required": ["profiles"], "additionalProperties": False}}}}})
async def post_batch(request: Request, caller: ProfilesCaller) -> Response:
    """Up to 1,000 profiles, each ``{"profileId", …}``; ``mode`` merge (PATCH, the
    default) or replace (PUT). A result per item, in order: 200, 201, 409 or 422."""
    gateway = _gateway(request)
    try:
        batch = _Batch.model_validate(await _body(request, MAX_BATCH_BYTES))
    except ValidationError as error:
        raise RequestValidationError(_invalid(error.errors())) from None
    if len(batch.profiles) > MAX_BATCH:
        raise HTTPException(413, f"{len(batch.profiles)} profiles; at most {MAX_BATCH}")
    tenant_schema = await gateway.profile_schemas.get(caller.tenant)
    results: list[dict[str, Any]] = []
    writes: list[tuple[int, ProfileWrite]] = []
    for index, item in enumerate(batch.profiles):
        profile_id = item.pop("profileId", None)
        if not isinstance(profile_id, str) or not re.fullmatch(PROFILE_ID, profile_id):
            results.append(_item(index, 422, None, [{
                "type": "value_error", "loc": ["body", "profiles", index, "profileId"],
                "msg": "a profile id: 1 to 128 of A-Z a-z 0-9 _ . @ + -"}]))
            continue
        try:
            parsed = tenant_schema.model.model_validate(item)
        except ValidationError as error:
            results.append(_item(index, 422, profile_id,
                                 _invalid(error.errors(), ("body", "profiles", index))))
            continue
        writes.append((index, to_write(profile_id, parsed, replace=batch.mode == "replace")))
    now = datetime.now(UTC)
    async with gateway.pool.acquire() as connection, connection.transaction():
        applied = await profile_store.apply_profile_writes(
            connection, caller.tenant, [(write, now) for _, write in writes])
        for (index, write), result in zip(writes, applied, strict=True):
            if result.outcome in ("test", "stale"):
                results.append(_item(index, 409, write.profile_id,
                                     _refusal(result, write.profile_id).detail))
            else:
                results.append(_item(index, 201 if result.outcome == "created" else 200,
                                     write.profile_id))
    results.sort(key=lambda r: r["index"])
    written = sum(r["status"] in (200, 201) for r in results)
    return _json({"written": written, "refused": len(results) - written, "results": results})
