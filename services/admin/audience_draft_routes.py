"""An audience's definition counted and previewed without storing it, for the console's
builder (its live count as the marketer changes the tree). Checked as a stored audience's
definition is (a 422 naming the place in the tree, ``["body", "definition", "all", 1,
"value"]``), counted on the tenant's real profiles; nothing is written.

    POST /admin/v1/audiences/count    {"definition": …}             {"count", "countedAt"}
    POST /admin/v1/audiences/preview  {"definition": …, "limit"?}   {"profiles": [...]}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from services.admin.audience_routes import MAX_PREVIEW, Member, _checked_new, _run, _value
from services.admin.dependencies import AdminCaller, Db
from shared.adapters import audience_reader as reader

router = APIRouter(prefix="/admin/v1/audiences", tags=["audiences"])


class DraftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: Any = Field(description="a condition tree: schemas/conditions.v1.json")
    limit: int = Field(20, ge=1, le=MAX_PREVIEW, description="preview: members shown")


class DraftCountOut(BaseModel):
    count: int
    countedAt: datetime


class DraftPreviewOut(BaseModel):
    profiles: list[dict[str, Any]]


@router.post("/count", response_model=DraftCountOut)
async def count_draft(body: DraftIn, caller: AdminCaller, db: Db) -> DraftCountOut:
    """How many of the tenant's profiles the definition would hold now (not stored)."""
    _, checked = await _checked_new(db, caller.tenant, body.definition)
    now = datetime.now(UTC)
    count = await _run(reader.count_members(db, reader.audience_query(caller.tenant, checked,
                                                                      now)))
    return DraftCountOut(count=count, countedAt=now)


@router.post("/preview", response_model=DraftPreviewOut)
async def preview_draft(body: DraftIn, caller: AdminCaller, db: Db) -> DraftPreviewOut:
    """The first ``limit`` members by profile id, with the values of the paths tested."""
    _, checked = await _checked_new(db, caller.tenant, body.definition)
    query = reader.audience_query(caller.tenant, checked, datetime.now(UTC))
    members = await _run(reader.preview_members(db, query, body.limit))
    return DraftPreviewOut(profiles=[
        Member(profile_id=m["profileId"], fields={k: _value(v) for k, v in m["fields"].items()}
               ).model_dump(by_alias=True) for m in members])
