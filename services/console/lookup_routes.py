"""Event lookup: paste a pKey, see the event's status, the reason and the per-message
trace (``GET /admin/v1/statuses/{pkey}``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.console.api import ApiRefusal
from services.console.web import Api, SessionDep, render

router = APIRouter()


@router.get("/lookup")
async def lookup(request: Request, session: SessionDep, api: Api,
                 pkey: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    found, error = None, None
    pkey = (pkey or "").strip() or None
    if pkey:
        try:
            found = await api.get(f"/statuses/{pkey}")
        except ApiRefusal as refused:
            error = (f"No event with the pKey {pkey!r} in this tenant."
                     if refused.status == 404 else refused.message)
    return render(request, "lookup.html", session, title="Event lookup", pkey=pkey or "",
                  found=found, error=error)
