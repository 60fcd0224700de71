"""Profiles: search by id, email or phone (``GET /admin/v1/profiles?q=``), and one
profile's attributes, consent, topics and recent messages (``…/{id}``, ``…/{id}/messages``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response

from services.console.api import ApiRefusal
from services.console.web import Api, SessionDep, render

router = APIRouter()
SEARCH_LIMIT = 50
MESSAGE_LIMIT = 50


@router.get("/profiles")
async def search(request: Request, session: SessionDep, api: Api,
                 q: Annotated[str, Query(max_length=254)] = "") -> Response:
    found, error = None, None
    if q.strip():
        try:
            found = (await api.get("/profiles", q=q.strip(), limit=SEARCH_LIMIT))["profiles"]
        except ApiRefusal as refused:
            error = refused.message
    return render(request, "profiles.html", session, title="Profiles", q=q, found=found,
                  error=error, limit=SEARCH_LIMIT)


@router.get("/profiles/{profile_id}")
async def show(request: Request, session: SessionDep, api: Api,
               profile_id: Annotated[str, Path(max_length=128)]) -> Response:
    try:
        profile = await api.get(f"/profiles/{profile_id}")
        messages = (await api.get(f"/profiles/{profile_id}/messages",
                                  limit=MESSAGE_LIMIT))["messages"]
    except ApiRefusal as refused:
        raise HTTPException(404, refused.message) from refused
    return render(request, "profile.html", session, title=f"Profile {profile_id}",
                  profile=profile, messages=messages, limit=MESSAGE_LIMIT)
