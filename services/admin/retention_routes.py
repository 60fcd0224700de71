"""A tenant's retention of its event statuses and its delivery ledger, through the admin
API: what ``parcours maintenance retention TENANT`` sets, for the tenant of the admin key.

    GET /admin/v1/retention   {"statusesDays": 10, "deliveriesDays": null, "kept": {…}, …}
    PUT /admin/v1/retention   {"statusesDays": 10, "deliveriesDays": null}

Days; null: the settings' default; 0: for ever. A PUT replaces both (a key left out is
null: back to the default). A value under its floor (statuses 8 days, ledger 9:
shared/domain/partitions.py) is a 422 naming the field, and nothing changes. It takes
effect at once: a status read joins the table, and the hourly partition manager drops a
week only past the longest retention of any tenant (README, Retention)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from pydantic.alias_generators import to_camel

from services.admin.dependencies import AdminCaller, Db
from shared.adapters.retention_store import (
    retention_of_tenant,
    set_tenant_retention,
    table_defaults,
)
from shared.domain.partitions import FLOORS, keep_days

router = APIRouter(prefix="/admin/v1/retention", tags=["operations"])

MAX_DAYS = 36_500  # a hundred years; the column is an integer
_DAYS = ("days; null: the settings' default (see defaults); 0: for ever; never under its"
         " floor (see floors)")
_FIELDS = {"statusesDays": "event_status", "deliveriesDays": "deliveries"}


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True,
                              extra="forbid")


class RetentionIn(_Camel):
    statuses_days: StrictInt | None = Field(None, ge=0, le=MAX_DAYS,
                                            description="event statuses: " + _DAYS)
    deliveries_days: StrictInt | None = Field(None, ge=0, le=MAX_DAYS,
                                              description="the delivery ledger: " + _DAYS)


class Days(_Camel):
    statuses_days: int | None
    deliveries_days: int | None


class RetentionOut(RetentionIn):
    kept: Days = Field(description="what is kept: the tenant's value, else the default, never"
                                   " under the floor; null: for ever")
    defaults: Days = Field(description="the settings' (PARCOURS_RETENTION_EVENT_STATUS_DAYS,"
                                       " PARCOURS_RETENTION_DELIVERIES_DAYS); 0: for ever")
    floors: Days


def _out(request: Request, statuses: int | None, deliveries: int | None) -> RetentionOut:
    defaults = table_defaults(request.app.state.settings)
    return RetentionOut(
        statuses_days=statuses, deliveries_days=deliveries,
        kept=Days(statuses_days=keep_days(statuses, defaults["event_status"],
                                          FLOORS["event_status"]),
                  deliveries_days=keep_days(deliveries, defaults["deliveries"],
                                            FLOORS["deliveries"])),
        defaults=Days(statuses_days=defaults["event_status"],
                      deliveries_days=defaults["deliveries"]),
        floors=Days(statuses_days=FLOORS["event_status"],
                    deliveries_days=FLOORS["deliveries"]))


@router.get("", response_model=RetentionOut, response_model_by_alias=True)
async def get_retention(caller: AdminCaller, db: Db, request: Request) -> RetentionOut:
    return _out(request, *await retention_of_tenant(db, caller.tenant))


@router.put("", response_model=RetentionOut, response_model_by_alias=True)
async def put_retention(body: RetentionIn, caller: AdminCaller, db: Db,
                        request: Request) -> RetentionOut:
    """Replace the tenant's retention. Under a floor: 422 at ``["body", field]``."""
    given = {"statusesDays": body.statuses_days, "deliveriesDays": body.deliveries_days}
    problems = [{"type": "greater_than_equal", "loc": ["body", key],
                 "msg": f"{value} days is under the floor of {FLOORS[table]} days"
                        f" ({table}); 0 keeps for ever",
                 "ctx": {"ge": FLOORS[table]}}
                for key, table in _FIELDS.items()
                if (value := given[key]) is not None and 0 < value < FLOORS[table]]
    if problems:
        raise RequestValidationError(problems)
    await set_tenant_retention(db, caller.tenant, body.statuses_days, body.deliveries_days)
    return _out(request, body.statuses_days, body.deliveries_days)
