"""Test profiles: who receives proofs, and the sample event data previews and proofs are
rendered with (``/admin/v1/test-profiles``). A marketer makes one here before testing a
message, as the transactional seed's second step does."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.console.api import ApiRefusal
from services.console.forms import FormProblem, exact_json_text, proof_recipient_body
from services.console.web import Api, Form, SessionDep, render

router = APIRouter()
ProfileId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
TEXT_FIELDS = ("email", "mobilePhone", "firstName", "lastName", "city", "birthDate",
               "locale")
JSON_FIELDS = ("sampleCtx", "attributes", "pushRegistrations")


def _as_form(profile: dict[str, Any]) -> dict[str, str]:
    """A stored test profile as the form shows it: JSON fields indented."""
    values = {key: profile.get(key) or "" for key in TEXT_FIELDS}
    for key in JSON_FIELDS:
        value = profile.get(key)
        values[key] = exact_json_text(value) if value else ""
    values["profileId"] = profile.get("profileId", "")
    return values


@router.get("/test-profiles")
async def list_test_profiles(request: Request, session: SessionDep, api: Api,
                             saved: Annotated[str, Query(max_length=64)] = "") -> Response:
    profiles = await api.get("/test-profiles")
    return render(request, "test_profiles.html", session, title="Test profiles",
                  profiles=profiles, saved=saved)


@router.get("/test-profiles/new")
async def new_test_profile(request: Request, session: SessionDep) -> Response:
    return render(request, "test_profile.html", session, title="New test profile",
                  values={}, errors={}, error=None, creating=True,
                  text_fields=TEXT_FIELDS)


@router.get("/test-profiles/{profile_id}")
async def edit_test_profile(request: Request, session: SessionDep, api: Api,
                            profile_id: ProfileId) -> Response:
    try:
        profile = await api.get(f"/test-profiles/{profile_id}")
    except ApiRefusal as refused:
        raise HTTPException(404, refused.message) from refused
    return render(request, "test_profile.html", session, title=f"Test profile {profile_id}",
                  values=_as_form(profile), errors={}, error=None, creating=False,
                  text_fields=TEXT_FIELDS)


@router.post("/test-profiles")
async def save_test_profile(request: Request, session: SessionDep, api: Api, form: Form
                            ) -> Response:
    values = {key: str(form.get(key) or "") for key in ("profileId", *TEXT_FIELDS,
                                                        *JSON_FIELDS)}
    creating = form.get("creating") == "1"
    profile_id = values["profileId"].strip()
    errors: dict[str, str] = {}
    try:
        if not profile_id:
            raise FormProblem("profileId", "give the test profile an id")
        body = proof_recipient_body(form, TEXT_FIELDS, JSON_FIELDS)
        await api.put(f"/test-profiles/{profile_id}", content=body)
        return RedirectResponse(f"/test-profiles?saved={profile_id}", status_code=303)
    except FormProblem as problem:
        errors = {problem.field: problem.why}
    except ApiRefusal as refused:
        # beside the input: "sampleCtx.total" shows under sampleCtx, naming total
        for key, why in (refused.fields or {"profileId": refused.message}).items():
            top, _, rest = key.partition(".")
            errors.setdefault(top, f"{rest}: {why}" if rest else why)
    return render(request, "test_profile.html", session, status=422,
                  title="Test profile", values=values, errors=errors, creating=creating,
                  error="Not saved: see the fields marked below.", text_fields=TEXT_FIELDS)


@router.post("/test-profiles/{profile_id}/delete")
async def delete_test_profile(request: Request, session: SessionDep, api: Api, form: Form,
                              profile_id: ProfileId) -> Response:
    try:
        await api.delete(f"/test-profiles/{profile_id}")
    except ApiRefusal as refused:
        raise HTTPException(404, refused.message) from refused
    return RedirectResponse("/test-profiles", status_code=303)
