"""A tenant's global control group (holdout), through the admin API: the share of its
profiles, in percent (hundredths count, at most 50), that no live journey sends to —
never a transactional message — so that the lift of marketing as a whole can be measured
against them. Which profiles: a hash of tenant and profile id (the same in every
journey; raising the share keeps those already held out). Test runs ignore it.

    GET /admin/v1/journey-holdout   {"percent": 5}
    PUT /admin/v1/journey-holdout   {"percent": 5}: from the next profiles entering on
"""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator

from services.admin.dependencies import AdminCaller, Db
from shared.adapters import journey_holdout_store as store
from shared.domain.journeys.holdout import MAX_PERCENT

router = APIRouter(prefix="/admin/v1/journey-holdout", tags=["journeys"])


class Holdout(BaseModel):
    percent: float = Field(ge=0, le=float(MAX_PERCENT),
                           description="percent of the tenant's profiles held out of every"
                                       " live journey (0 to 50, in hundredths at most)")

    @field_validator("percent")
    @classmethod
    def _hundredths(cls, value: float) -> float:
        if round(value, 2) != value:
            raise ValueError("give the percent in hundredths at most (2.5, 0.25)")
        return value


@router.get("", response_model=Holdout)
async def get_holdout(caller: AdminCaller, connection: Db) -> Holdout:
    return Holdout(percent=float(await store.percent(connection, caller.tenant)))


@router.put("", response_model=Holdout)
async def put_holdout(body: Holdout, caller: AdminCaller, connection: Db) -> Holdout:
    await store.set_percent(connection, caller.tenant, Decimal(str(body.percent)))
    return body
