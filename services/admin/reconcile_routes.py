"""``GET /admin/v1/reconcile``: did every event the caller's tenant had accepted in a window
end, exactly once? The same verdict as ``parcours reconcile`` (shared/domain/reconcile.py),
as JSON, always 200 (``clean`` says whether anything was lost, stuck or duplicated), with
the account of the tenant's messages without a pKey (journey messages) under ``messages``
(null when ``eventId`` names one event).

    GET /admin/v1/reconcile?since=2026-12-04T00:00:00Z&until=…&eventId=EVT…&graceS=60&limit=100

A window of up to 7 days (the input topics keep their records that long). The command line
reads the same sources in its own process, for large windows and every tenant at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime

from services.admin.dependencies import AdminCaller
from shared.adapters.reconcile_sources import Window, reconcile_window

router = APIRouter(prefix="/admin/v1/reconcile", tags=["operations"])
MAX_WINDOW = timedelta(days=7)
EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)  # a day's margin for offsets and time zones


@router.get("")
async def reconcile(
    request: Request, caller: AdminCaller, since: AwareDatetime,
    until: AwareDatetime | None = None, eventId: str | None = None,
    graceS: Annotated[float, Query(ge=0, le=7 * 86400)] = 60.0,
    limit: Annotated[int, Query(ge=0, le=10_000)] = 100,
) -> dict[str, Any]:
    end = until or datetime.now(UTC)
    if since < EARLIEST:  # Kafka's record timestamps start at the Unix epoch
        raise RequestValidationError([{
            "type": "window", "loc": ("query", "since"), "input": since.isoformat(),
            "msg": "since must be after 1970-01-01T00:00:00Z (records carry Unix times)"}])
    if not since < end or end - since > MAX_WINDOW:
        raise RequestValidationError([{
            "type": "window", "loc": ("query", "since"), "input": since.isoformat(),
            "msg": "since must be before until (default now), at most 7 days before it"}])
    window = Window(since.timestamp(), end.timestamp(), caller.tenant, eventId)
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as connection:
        reconciled = await reconcile_window(request.app.state.settings, connection, window,
                                            graceS)
    return reconciled.as_json(window, graceS, limit)
