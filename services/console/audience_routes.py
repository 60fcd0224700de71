"""Audiences: the tenant's list, and the builder: the condition tree as nested rows (all,
any or none of; each row an attribute, an operator, a value), rows and groups added and
removed by the server (htmx swaps the tree), the live count and a preview of members as
the tree changes (``POST /admin/v1/audiences/count`` and ``…/preview``: nothing stored),
the admin API's errors beside the row they name; save (create or replace) and delete."""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.console.api import ApiRefusal, Caller
from services.console.condition_tree import (
    KINDS,
    OPS,
    PARTS,
    ROOT,
    Group,
    blank,
    edit,
    errors_by_address,
    to_json,
    tree_from_form,
    tree_from_json,
)
from services.console.forms import exact_json_text, text
from services.console.web import Api, Form, SessionDep, render
from shared.domain.audiences import profile_paths
from shared.domain.profile_schema import ProfileSchema

router = APIRouter()

AudienceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
_AT = re.compile(r"^t(\.\d{1,3}){0,9}$")
_AUDIENCE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
PREVIEW = 20
KIND_LABELS = {"all": "all of", "any": "any of", "none": "none of"}


async def _paths(api: Caller) -> dict[str, str]:
    """Every path this tenant's audiences may test, with its type (the admin's own list)."""
    schema = await api.get("/profile-schema")
    return {path: spec.type.value for path, spec in profile_paths(ProfileSchema.model_validate(
        {"attributes": schema.get("attributes", []), "topics": schema.get("topics", [])}
    )).items()}


def _tree_context(tree: Group, paths: dict[str, str], errors: dict[str, str],
                  focus: str | None = None) -> dict[str, Any]:
    return {"tree": tree, "paths": paths, "errors": _by_node(errors), "focus": focus,
            "ops": OPS, "parts": PARTS, "kinds": KINDS, "kind_labels": KIND_LABELS}


def _by_node(errors: dict[str, str]) -> dict[str, str]:
    """Errors by node address: ``t.1.value`` is shown at ``t.1`` as ``value: why``."""
    out: dict[str, list[str]] = {}
    for key, why in errors.items():
        node, _, name = key.rpartition(".")
        if name in ("path", "op", "part", "value") and _AT.match(node):
            out.setdefault(node, []).append(f"{name}: {why}")
        else:
            out.setdefault(key, []).append(why)
    return {node: "; ".join(whys) for node, whys in out.items()}


@router.get("/audiences")
async def list_audiences(request: Request, session: SessionDep, api: Api) -> Response:
    audiences = await api.get("/audiences")
    audiences.sort(key=lambda a: a["updatedAt"], reverse=True)
    return render(request, "audiences.html", session, title="Audiences", audiences=audiences,
                  summary=_summary)


def _summary(definition: Any) -> str:
    """A stored definition in a line: ``all of: city in (…), birthDate year gt 1980``."""
    def one(node: Any) -> str:
        if isinstance(node, dict):
            for kind in ("all", "any"):
                if isinstance(node.get(kind), list):
                    return f"{kind} of ({', '.join(one(n) for n in node[kind])})"
            if "not" in node:
                return f"not ({one(node['not'])})"
            value = node.get("value", node.get("last", node.get("next")))
            part = f" {node['part']}" if node.get("part") else ""
            return f"{node.get('path')}{part} {node.get('op')} {exact_json_text(value)}"
        return "?"
    line = one(definition)
    return line if len(line) <= 160 else line[:159] + "…"


async def _builder(request: Request, session: SessionDep, api: Caller, *,
                   audience: dict[str, Any] | None, tree: Group, name: str,
                   errors: dict[str, str] | None = None, notice: str | None = None,
                   error: str | None = None, status: int = 200) -> Response:
    paths = await _paths(api)
    return render(request, "audience.html", session, status=status,
                  title=audience["name"] if audience else "New audience", audience=audience,
                  audience_name=name, notice=notice, error=error,
                  name_error=(errors or {}).get("name"),
                  **_tree_context(tree, paths, errors or {}))


@router.get("/audiences/new")
async def new_audience(request: Request, session: SessionDep, api: Api) -> Response:
    return await _builder(request, session, api, audience=None, tree=blank(), name="")


@router.get("/audiences/{audience_id}")
async def show_audience(request: Request, session: SessionDep, api: Api,
                        audience_id: AudienceId,
                        saved: Annotated[int, Query(ge=0, le=1)] = 0) -> Response:
    try:
        audience = await api.get(f"/audiences/{audience_id}")
    except ApiRefusal as refused:
        raise HTTPException(404, refused.message) from refused
    return await _builder(request, session, api, audience=audience,
                          tree=tree_from_json(audience["definition"]), name=audience["name"],
                          notice="Saved." if saved else None)


@router.post("/audiences/tree")
async def change_tree(request: Request, session: SessionDep, api: Api, form: Form
                      ) -> Response:
    """The tree re-drawn after adding a row or a group, or removing one (an htmx fragment);
    the live count follows (the fragment asks for it once loaded, in the builder's queue:
    a count of the tree before is cancelled, so no answer names rows that are gone)."""
    at = text(form, "at")
    tree, focus = edit(tree_from_form(form), text(form, "action"), at if _AT.match(at) else "")
    return render(request, "_audience_tree.html", session, recount=True,
                  **_tree_context(tree, await _paths(api), {}, focus))


@router.post("/audiences/live")
async def live(request: Request, session: SessionDep, api: Api, form: Form) -> Response:
    """The count and the first members of the tree as it stands (nothing stored), and
    the errors by row (``data-row-errors``: audience.js puts each beside its row)."""
    tree = tree_from_form(form)
    built = to_json(tree, await _paths(api))
    errors = dict(built.problems)
    count = members = None
    if built.definition is not None and not errors:
        try:
            count = await api.post("/audiences/count", json={"definition": built.definition})
            members = (await api.post("/audiences/preview", json={
                "definition": built.definition, "limit": PREVIEW}))["profiles"]
        except ApiRefusal as refused:
            errors |= errors_by_address(refused.fields, built.locs) or {ROOT: refused.message}
    columns = list(dict.fromkeys(k for m in members or [] for k in m["fields"]))
    return render(request, "_audience_live.html", session, count=count, members=members,
                  columns=columns, limit=PREVIEW, definition=built.definition,
                  definition_json=_pretty(built.definition), errors=_by_node(errors),
                  row_errors=orjson.dumps({f"err-{a.replace('.', '-')}": why for a, why
                                           in _by_node(errors).items()}).decode())


def _pretty(definition: Any) -> str:
    return exact_json_text(definition) if definition else ""


@router.post("/audiences/save")
async def save(request: Request, session: SessionDep, api: Api, form: Form) -> Response:
    audience_id = text(form, "audienceId")
    if audience_id and not _AUDIENCE_ID.match(audience_id):
        raise HTTPException(404, "no such audience")
    name = text(form, "name")
    tree = tree_from_form(form)
    audience = None
    if audience_id:
        try:
            audience = await api.get(f"/audiences/{audience_id}")
        except ApiRefusal as refused:
            raise HTTPException(404, refused.message) from refused
    if edited := text(form, "edit"):  # a row or group added or removed without JavaScript
        action, _, at = edited.partition(":")
        tree, _focus = edit(tree, action, at if _AT.match(at) else "")
        return await _builder(request, session, api, audience=audience, tree=tree, name=name)
    built = to_json(tree, await _paths(api))
    errors: dict[str, str] = dict(built.problems)
    if built.definition is None:
        errors[ROOT] = "choose an attribute in a row first"
    if not errors:
        body = {"name": name, "definition": built.definition}
        try:
            if audience_id:
                saved = await api.put(f"/audiences/{audience_id}", json=body)
            else:
                saved = await api.post("/audiences", json=body)
            return RedirectResponse(f"/audiences/{saved['audienceId']}?saved=1",
                                    status_code=303)
        except ApiRefusal as refused:
            errors = errors_by_address(refused.fields, built.locs)
            if "name" in refused.fields:
                errors["name"] = refused.fields["name"]
            if not errors:
                errors = {ROOT: refused.message}
    return await _builder(request, session, api, audience=audience, tree=tree, name=name,
                          errors=errors, status=422,
                          error="Not saved: see the conditions marked below.")


@router.post("/audiences/{audience_id}/delete")
async def delete(request: Request, session: SessionDep, api: Api, form: Form,
                 audience_id: AudienceId) -> Response:
    try:
        await api.delete(f"/audiences/{audience_id}")
    except ApiRefusal as refused:
        audience = await api.get(f"/audiences/{audience_id}")
        return await _builder(request, session, api, audience=audience,
                              tree=tree_from_json(audience["definition"]),
                              name=audience["name"], error=refused.message, status=409)
    return RedirectResponse("/audiences", status_code=303)
