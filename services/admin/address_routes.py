"""The denylist and the quarantine through the admin API: addresses that must receive
nothing (an email, a whole email domain, a phone number, a device token), and addresses
kept from receiving after failures, until released.

Addresses are keyed as the delivery rules look them up (``addresses``): an email folded to
lower case, ``example.com`` or ``@example.com`` a whole domain. Lists come a page at a time,
by channel then address: ``?limit=`` (default 100) and ``?cursor=`` the page's
``nextCursor``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from services.admin.dependencies import AdminCaller, Db
from shared.adapters import rule_admin_store as store
from shared.domain.delivery_rules.addresses import denylist_entry, normalise
from shared.domain.delivery_rules.model import Channel
from shared.domain.delivery_rules.tenant import RuleSettings

router = APIRouter(prefix="/admin/v1", tags=["denylist and quarantine"])
MAX_PAGE = 1000
Reason = Annotated[str, Field(max_length=500)]
Text = Annotated[str, Field(min_length=1, max_length=320)]  # an email is at most 254


class DenylistIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Channel
    entry: Text = Field(description="an address, a phone number, a token; for email a domain"
                                    " (example.com or @example.com) too")
    reason: Reason | None = None


class DenylistOut(BaseModel):
    channel: str
    entry: str
    kind: str = Field(description="address or domain")
    reason: str | None
    addedAt: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> DenylistOut:
        return cls(channel=row["channel"], entry=row["entry"], kind=row["kind"],
                   reason=row["reason"], addedAt=row["added_at"])


class DenylistPage(BaseModel):
    items: list[DenylistOut]
    nextCursor: str | None = Field(description="the next page's cursor; null on the last")


class QuarantineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Channel
    address: Text
    reason: Reason = "quarantined by an administrator"


class QuarantineOut(BaseModel):
    channel: str
    address: str
    quarantined: bool = Field(description="false: only watched (soft failures counted)")
    softFailures: int
    lastFailureAt: datetime | None
    quarantinedAt: datetime | None
    releaseAt: datetime | None
    reason: str | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> QuarantineOut:
        return cls(channel=row["channel"], address=row["address"],
                   quarantined=row["quarantined"], softFailures=row["soft_failures"],
                   lastFailureAt=row["last_failure_at"], quarantinedAt=row["quarantined_at"],
                   releaseAt=row["release_at"], reason=row["reason"])


class QuarantinePage(BaseModel):
    items: list[QuarantineOut]
    nextCursor: str | None


Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def _after(cursor: str | None) -> tuple[str, str] | None:
    """A cursor is the last row's ``channel:address``."""
    if cursor is None:
        return None
    channel, colon, key = cursor.partition(":")
    if not colon or channel not in ("email", "sms", "push"):
        raise RequestValidationError([{"type": "value_error", "loc": ["query", "cursor"],
                                       "msg": "not a cursor: use a page's nextCursor"}])
    return channel, key


def _next(rows: list[dict[str, Any]], key: str, limit: int) -> str | None:
    return f"{rows[-1]['channel']}:{rows[-1][key]}" if len(rows) == limit else None


@router.get("/denylist", response_model=DenylistPage)
async def list_denylist(caller: AdminCaller, db: Db, channel: Channel | None = None,
                        limit: Limit = 100, cursor: str | None = None) -> DenylistPage:
    rows = await store.list_denylisted(db, caller.tenant, channel, _after(cursor), limit)
    return DenylistPage(items=[DenylistOut.of(r) for r in rows],
                        nextCursor=_next(rows, "entry", limit))


@router.post("/denylist", status_code=201, response_model=DenylistOut,
             responses={200: {"description": "already on the denylist: left as it was"}})
async def add_to_denylist(body: DenylistIn, caller: AdminCaller, db: Db, response: Response
                          ) -> DenylistOut:
    try:
        entry = denylist_entry(body.channel, body.entry)
    except ValueError as error:
        raise RequestValidationError([{"type": "value_error", "loc": ["body", "entry"],
                                       "msg": str(error)}]) from None
    row, created = await store.add_denylisted(db, caller.tenant, entry.channel, entry.entry,
                                              entry.kind, body.reason)
    if not created:
        response.status_code = 200
    return DenylistOut.of(row)


@router.delete("/denylist/{channel}/{entry}", status_code=204)
async def remove_from_denylist(channel: Channel, entry: str, caller: AdminCaller, db: Db
                               ) -> Response:
    try:
        key = denylist_entry(channel, entry).entry
    except ValueError:
        key = ""
    if not key or not await store.remove_denylisted(db, caller.tenant, channel, key):
        raise HTTPException(404, f"{entry!r} is not on the {channel} denylist")
    return Response(status_code=204)


@router.get("/quarantine", response_model=QuarantinePage)
async def list_quarantine(
    caller: AdminCaller, db: Db, channel: Channel | None = None,
    watched: Annotated[bool, Query(alias="all", description="also the addresses only"
                                   " watched: soft failures counted, not quarantined")] = False,
    limit: Limit = 100, cursor: str | None = None,
) -> QuarantinePage:
    rows = await store.list_quarantine(db, caller.tenant, channel, watched, _after(cursor), limit)
    return QuarantinePage(items=[QuarantineOut.of(r) for r in rows],
                          nextCursor=_next(rows, "address", limit))


@router.post("/quarantine", status_code=201, response_model=QuarantineOut)
async def quarantine_address(body: QuarantineIn, caller: AdminCaller, db: Db
                             ) -> QuarantineOut:
    """Quarantine an address by hand, until the tenant's ``releaseAfter`` has passed (or
    an administrator releases it)."""
    settings = RuleSettings.model_validate(await store.load_settings(db, caller.tenant))
    address = normalise(body.channel, body.address)
    if not address:
        raise RequestValidationError([{"type": "value_error", "loc": ["body", "address"],
                                       "msg": "an address, a phone number or a token"}])
    return QuarantineOut.of(await store.quarantine_address(
        db, caller.tenant, body.channel, address, body.reason,
        settings.quarantine.releaseAfter))


@router.post("/quarantine/{channel}/{address}/release", status_code=204)
async def release_address(channel: Channel, address: str, caller: AdminCaller, db: Db
                          ) -> Response:
    """Out of quarantine now, its soft failures forgotten."""
    if not await store.release_address(db, caller.tenant, channel, normalise(channel, address)):
        raise HTTPException(404, f"{address!r} is not in quarantine on {channel}")
    return Response(status_code=204)
