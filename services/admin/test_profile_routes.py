"""Test profiles through the admin API: who receives proofs, and the sample event data
previews and proofs are rendered with."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from services.admin.dependencies import AdminCaller, Db
from shared.adapters import test_profile_store as store
from shared.domain.exact import exact_json, read_exact
from shared.domain.fields import EmailAddress, PhoneNumber
from shared.domain.locale_tags import LocaleTag

router = APIRouter(prefix="/admin/v1/test-profiles", tags=["test profiles"])
ProfileId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
Name = Annotated[str, StringConstraints(max_length=255)]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class PushRegistration(_Model):
    registration_token: str = Field(min_length=1, max_length=4096)
    application: str = Field(min_length=1, max_length=255)
    push_platform: Literal["apns", "fcm"]


class _TestProfile(_Model):
    """What is stored, read back as stored: the input rules (below) may tighten later, and
    a profile saved under older rules must still list."""

    email: str | None = None
    mobile_phone: str | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    city: Name | None = None
    birth_date: date | None = None
    locale: str | None = Field(default=None, description="chooses the variant of a message"
                               " previews and proofs render, as a profile's does")
    attributes: dict[str, Any] = Field(default_factory=dict,
                                       description="more profile fields, as templates see them")
    push_registrations: list[PushRegistration] = Field(
        default_factory=list, max_length=10, description="devices that receive push proofs")
    sample_ctx: dict[str, Any] = Field(
        default_factory=dict, description="sample event data: fills ctx in previews and proofs")


class TestProfileIn(_TestProfile):
    email: EmailAddress | None = None
    mobile_phone: PhoneNumber | None = None
    locale: LocaleTag | None = None


class TestProfileOut(_TestProfile):
    profile_id: str
    updated_at: datetime


def _document(row: dict[str, Any]) -> dict[str, Any]:
    """The API's document of a stored row, ``sampleCtx`` with its decimals as written."""
    out = TestProfileOut.model_validate({**row, "sample_ctx": {}}).model_dump(
        mode="json", by_alias=True)
    return {**out, "sampleCtx": row["sample_ctx"]}


def _answer(document: Any) -> Response:
    # exact_json, not the response model: pydantic would write a Decimal as a string
    return Response(exact_json(document), media_type="application/json")


_DOC = {200: {"model": TestProfileOut}}


@router.put("/{profile_id}", responses=_DOC)
async def put_test_profile(
    profile_id: ProfileId, profile: TestProfileIn, caller: AdminCaller, db: Db,
    request: Request,
) -> Response:
    """Create or replace a test profile. ``sampleCtx`` is kept as written: 19.90 previews
    as 19.90, the way the event would send it."""
    fields = profile.model_dump()
    # Devices are kept as the API spells them, like the targets of push events.
    fields["push_registrations"] = [r.model_dump(by_alias=True)
                                    for r in profile.push_registrations]
    fields["sample_ctx"] = read_exact(await request.body()).get("sampleCtx") or {}
    row = await store.put_test_profile(db, caller.tenant, profile_id, fields)
    if row is None:
        raise HTTPException(409, f"{profile_id!r} is a real profile; pick another id")
    return _answer(_document(row))


@router.get("", responses={200: {"model": list[TestProfileOut]}})
async def list_test_profiles(caller: AdminCaller, db: Db) -> Response:
    return _answer([_document(row) for row in await store.list_test_profiles(db, caller.tenant)])


@router.get("/{profile_id}", responses=_DOC)
async def get_test_profile(profile_id: str, caller: AdminCaller, db: Db) -> Response:
    row = await store.get_test_profile(db, caller.tenant, profile_id)
    if row is None:
        raise HTTPException(404, f"no test profile {profile_id!r}")
    return _answer(_document(row))


@router.delete("/{profile_id}", status_code=204)
async def delete_test_profile(profile_id: str, caller: AdminCaller, db: Db) -> Response:
    if not await store.delete_test_profile(db, caller.tenant, profile_id):
        raise HTTPException(404, f"no test profile {profile_id!r}")
    return Response(status_code=204)
