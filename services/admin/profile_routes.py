"""Profiles for the console: search by id, email or phone, one profile's document, and
its recent messages (the contact history). Read only; the tenant's real profiles (test
profiles are /admin/v1/test-profiles'); the documents are the profile API's
(``GET /v1/profiles/{id}``: shared/adapters/profile_documents.py), decimals exact.

    GET /admin/v1/profiles?q=ada@example.com&limit=20   {"profiles": [{…}, …]}
    GET /admin/v1/profiles/{profileId}                  {"profileId": "…", "email": …}
    GET /admin/v1/profiles/{profileId}/messages?limit=50
        {"profileId": "…", "messages": [{"messageId", "channel", "eventId", "journeyId",
          "origin", "pKey", "outcome", "rule", "reason", "contactAt", "delivery"…}, …]}
"""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from services.admin.dependencies import AdminCaller
from services.admin.storable import text_problem
from shared.adapters import profile_documents, profile_messages, profile_store
from shared.adapters.profile_schema_store import load_schema
from shared.domain.exact import exact_json
from shared.domain.profiles import PROFILE_ID

router = APIRouter(prefix="/admin/v1/profiles", tags=["profiles"])
ProfileId = Annotated[str, Path(pattern=PROFILE_ID, description="the tenant's id of the profile")]
MAX_RESULTS = 100
MAX_MESSAGES = 200


def _json(body: Any) -> Response:
    """Decimals as JSON numbers with their exact digits (as the profile API answers)."""
    return Response(exact_json(body), media_type="application/json")


async def _documents(connection: asyncpg.Connection, tenant: str,
                     rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    schema = (await load_schema(connection, tenant)).schema
    return [await profile_documents.document(connection, tenant, schema, row) for row in rows]


@router.get("")
async def search_profiles(
    request: Request, caller: AdminCaller,
    q: Annotated[str, Query(min_length=1, max_length=254, description=(
        "a profile id, an email address (any case) or a mobile phone; 3 characters or"
        " more also find those that start with it"))],
    limit: Annotated[int, Query(ge=1, le=MAX_RESULTS)] = 20,
) -> Response:
    """Profiles whose id is ``q`` first, then whose email address (any case) or mobile
    phone is, then whose id, address or phone starts with it; each once, at most ``limit``,
    as the profile API shows them. Every step is a range of one index."""
    if not q.strip() or (problem := text_problem(q)):
        raise RequestValidationError([{
            "type": "value_error", "loc": ["query", "q"],
            "msg": problem if q.strip() else "give a profile id, an email address or a phone"}])
    async with request.app.state.pool.acquire() as connection:
        rows = await profile_store.search_profiles(connection, caller.tenant, q, limit)
        return _json({"profiles": await _documents(connection, caller.tenant, rows)})


@router.get("/{profile_id}", responses={404: {"description": "No such profile"}})
async def get_profile(profile_id: ProfileId, request: Request, caller: AdminCaller
                      ) -> Response:
    """The profile as ``GET /v1/profiles/{id}`` shows it."""
    async with request.app.state.pool.acquire() as connection:
        row = await profile_store.read_profile(connection, caller.tenant, profile_id)
        if row is None:
            raise HTTPException(404, f"no profile {profile_id!r}")
        [document] = await _documents(connection, caller.tenant, [row])
    return _json(document)


@router.get("/{profile_id}/messages", responses={404: {"description": "No such profile"}})
async def recent_messages(
    profile_id: ProfileId, request: Request, caller: AdminCaller,
    limit: Annotated[int, Query(ge=1, le=MAX_MESSAGES)] = 50,
) -> Response:
    """The profile's recent messages, newest first: its contact history's ``limit``
    newest rows by contact instant (when it went, or is due for a deferred or scheduled
    message), within what the retention keeps (``retention_contact_history_days``, 180 by
    default). Each says where it came from (the event, or the journey with its node), the
    pKey of an event's message once it reached a sender (the delivery ledger's), the
    delivery rules' outcome (sent, excluded or deferred, with the rule and why) and the
    sender's (``delivery``: sending, waiting, sent or failed, its attempts and reply)."""
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as connection:
        if await profile_store.read_profile(connection, caller.tenant, profile_id) is None:
            raise HTTPException(404, f"no profile {profile_id!r}")
        messages = await profile_messages.recent_messages(connection, caller.tenant,
                                                          profile_id, limit)
    return _json({"profileId": profile_id, "messages": messages})
