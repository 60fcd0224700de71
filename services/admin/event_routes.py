"""Admin routes for events and their messages: configure, publish and unpublish events;
edit, preview and publish their messages. Every call needs an admin key and sees only its
tenant. Journey messages (JMS…) are event configurations too, authored the same way; they
have no ingestion endpoint: publishing one makes it sendable by its journeys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from services.admin.ctx_models import admin_typed_ctx, ingest_schema
from services.admin.dependencies import AdminCaller, Db
from services.admin.limits import MAX_LABEL, part_problems
from services.admin.models import (
    EventOut,
    MessageOut,
    PreviewIn,
    PreviewOut,
    VersionOut,
)
from shared.adapters import admin_store as store
from shared.adapters import rule_admin_store
from shared.adapters.profile_schema_store import load_schema
from shared.api_auth import Caller
from shared.domain import lifecycle
from shared.domain.default_templates import default_template
from shared.domain.events import (
    Channel,
    EventConfig,
    journey_message_refusal,
)
from shared.domain.exact import exact_json, read_exact
from shared.domain.lifecycle import EventState, MessageState
from shared.domain.locale_tags import normalise_tag
from shared.domain.locales import (
    MAX_VARIANTS,
    VARIANTS,
    LocaleChoice,
    compile_localised,
    split_template,
)
from shared.domain.rendering import (
    CHANNEL_PARTS,
    RenderedMessage,
    RenderError,
    render_message,
    template_context,
)

router = APIRouter(prefix="/admin/v1")


async def _locked(db: asyncpg.Connection, caller: Caller, event_id: str) -> store.StoredEvent:
    stored = await store.lock_event(db, caller.tenant, event_id)
    if stored is None:
        raise HTTPException(404, f"no event {event_id!r}; create it with POST /admin/v1/events")
    return stored


def _check_label(config: EventConfig) -> None:
    """Checked here, not in EventConfig: configurations stored before the limit still load."""
    if len(config.label) > MAX_LABEL:
        raise RequestValidationError([{"type": "string_too_long", "loc": ["body", "label"],
                                       "msg": f"at most {MAX_LABEL} characters"}])


async def _check_rule_names(db: asyncpg.Connection, tenant: str, config: EventConfig) -> None:
    """The typology and the topic an event names are the tenant's (422 naming the field)."""
    problems = []
    if config.typology is not None and not await rule_admin_store.typology_exists(
            db, tenant, config.typology):
        problems.append({"type": "value_error", "loc": ["body", "typology"], "msg":
                         f"no typology {config.typology!r} (GET /admin/v1/typologies)"})
    if config.topic is not None and config.topic not in {
            t.id for t in (await load_schema(db, tenant)).schema.topics}:
        problems.append({"type": "value_error", "loc": ["body", "topic"], "msg":
                         f"{config.topic!r} is not a topic of the profile schema"
                         " (GET /admin/v1/profile-schema)"})
    if problems:
        raise RequestValidationError(problems)


@router.post("/events", status_code=201, response_model=EventOut, response_model_by_alias=True)
async def create_event(config: EventConfig, caller: AdminCaller, db: Db) -> EventOut:
    _check_label(config)
    await _check_rule_names(db, caller.tenant, config)
    if not await store.create_event(db, caller.tenant, config):
        raise HTTPException(409, f"event {config.event_id!r} exists; PUT it to change it")
    return EventOut.of(await _locked(db, caller, config.event_id))


@router.get("/events", response_model=list[EventOut], response_model_by_alias=True)
async def list_events(caller: AdminCaller, db: Db) -> list[EventOut]:
    return [EventOut.of(e) for e in await store.list_events(db, caller.tenant)]


@router.get("/events/{event_id}", response_model=EventOut, response_model_by_alias=True)
async def get_event(event_id: str, caller: AdminCaller, db: Db) -> EventOut:
    return EventOut.of(await _locked(db, caller, event_id))


@router.put("/events/{event_id}", response_model=EventOut, response_model_by_alias=True)
async def update_event(event_id: str, config: EventConfig, caller: AdminCaller, db: Db) -> EventOut:
    if config.event_id != event_id:
        raise RequestValidationError([{"type": "value_error", "loc": ["body", "eventId"],
                                       "msg": f"must match the path's event id {event_id!r}"}])
    _check_label(config)
    await _check_rule_names(db, caller.tenant, config)
    stored = await _locked(db, caller, event_id)
    lifecycle.check_update(stored.config, stored.state, config)
    await store.update_event(db, caller.tenant, config)
    return EventOut.of(await _locked(db, caller, event_id))


@router.delete("/events/{event_id}", status_code=204)
async def delete_event(event_id: str, caller: AdminCaller, db: Db) -> None:
    lifecycle.check_delete((await _locked(db, caller, event_id)).state)
    await store.delete_event(db, caller.tenant, event_id)


@router.post("/events/{event_id}/publish", response_model=EventOut, response_model_by_alias=True)
async def publish_event(event_id: str, caller: AdminCaller, db: Db) -> EventOut:
    """Puts the ingestion endpoint up (a journey message, JMS…, has none: it becomes
    sendable by its journeys); the first publication creates the event's message as a draft
    with a default template."""
    stored = await _locked(db, caller, event_id)
    lifecycle.check_publish_event(stored.state)
    typology = stored.config.typology
    if typology is not None and not await rule_admin_store.typology_exists(
            db, caller.tenant, typology):
        raise HTTPException(409, f"the event names typology {typology}, deleted since; give it"
                                 " another (PUT /admin/v1/events/{eventId}) or none")
    await store.set_event_state(db, caller.tenant, event_id, EventState.PUBLISHED)
    if not await store.message_versions(db, caller.tenant, event_id):
        await store.add_message_version(db, caller.tenant, event_id,
                                        default_template(stored.config))
    return EventOut.of(await _locked(db, caller, event_id))


@router.post("/events/{event_id}/unpublish", response_model=EventOut,
             response_model_by_alias=True)
async def unpublish_event(event_id: str, caller: AdminCaller, db: Db) -> EventOut:
    """Takes the endpoint down: new calls are refused (404, "not published")."""
    lifecycle.check_unpublish_event((await _locked(db, caller, event_id)).state)
    await store.set_event_state(db, caller.tenant, event_id, EventState.UNPUBLISHED)
    return EventOut.of(await _locked(db, caller, event_id))


@router.get("/events/{event_id}/schema")
async def event_schema(event_id: str, caller: AdminCaller, db: Db) -> dict[str, Any]:
    """The JSON Schema of ``POST /v1/events/{eventId}``'s body (none for a journey
    message, which takes no events: 404 saying so)."""
    config = (await _locked(db, caller, event_id)).config
    if config.journey_message:
        raise HTTPException(404, journey_message_refusal(event_id))
    return ingest_schema(config)


async def _message(db: asyncpg.Connection, caller: Caller, event_id: str) -> MessageOut:
    config = (await _locked(db, caller, event_id)).config
    versions = await store.message_versions(db, caller.tenant, event_id)
    return MessageOut(event_id=event_id, channel=config.channel.value,
                      versions=[VersionOut.of(v) for v in versions])


@router.get("/events/{event_id}/message", response_model=MessageOut,
            response_model_by_alias=True)
async def get_message(event_id: str, caller: AdminCaller, db: Db) -> MessageOut:
    return await _message(db, caller, event_id)


def _not_templates(channel: Channel, template: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts that are not templates, or past their limits (``limits.MAX_PART``): each
    is a string (1 is not "1", null is not "None"), and a push message's ``data`` an
    object of them, one per key."""
    errors: list[dict[str, Any]] = []

    def refuse(loc: list[str], msg: str) -> None:
        errors.append({"loc": ["body", *loc], "msg": msg, "type": "template"})

    for loc, why in part_problems(template):
        refuse(loc, why)
    for part, value in template.items():
        if part == "data" and channel is Channel.PUSH:
            if not isinstance(value, dict):
                refuse(["data"], "must be an object: a template for each key")
                continue
            for key, item in value.items():
                if not isinstance(item, str):
                    refuse(["data", key], "must be a string: a template")
        elif part in CHANNEL_PARTS[channel] and not isinstance(value, str):
            refuse([part], "must be a string: a template")
    return errors


def _variant_problems(channel: Channel, template: dict[str, Any]
                      ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The template with its variants' tags normalised, and what is wrong with them:
    ``variants`` an object of at most ``MAX_VARIANTS``, each key a locale tag (no two the
    same but for case), each value a content checked as the default is."""
    default, _ = split_template(template)
    errors = _not_templates(channel, default)
    if VARIANTS not in template:
        return template, errors
    variants = template[VARIANTS]
    where = ["body", VARIANTS]
    if not isinstance(variants, dict):
        return template, [*errors, {"loc": where, "msg": "must be an object: a content for"
                                    " each locale tag", "type": "template"}]
    if len(variants) > MAX_VARIANTS:
        errors.append({"loc": where, "msg": f"at most {MAX_VARIANTS} variants"
                       f" ({len(variants)} sent)", "type": "template"})
    normalised: dict[str, Any] = {}
    for tag, content in variants.items():
        try:
            key = normalise_tag(tag)
        except ValueError as error:
            errors.append({"loc": [*where, tag], "msg": str(error), "type": "locale"})
            continue
        if key in normalised:
            errors.append({"loc": [*where, tag], "msg": f"the same locale as another"
                           f" variant ({key}: tags are matched without regard to case)",
                           "type": "locale"})
        if not isinstance(content, dict):
            errors.append({"loc": [*where, tag], "msg": "must be an object: the variant's"
                           " parts", "type": "template"})
            continue
        if VARIANTS in content:
            errors.append({"loc": [*where, tag, VARIANTS], "msg": "a variant has no variants",
                           "type": "template"})
        errors += [{**e, "loc": [*where, tag, *e["loc"][1:]]}
                   for e in _not_templates(channel, content)]
        normalised[key] = content
    return {**default, VARIANTS: normalised}, errors


def _template_error(error: RenderError, at: list[str] | None = None) -> JSONResponse:
    """A 422 naming the part: ``["body", "subject"]``, ``["body", "variants", "fr",
    "subject"]`` (under ``at`` when given: a preview's ``["body", "template"]``)."""
    part, _, why = str(error).partition(": ")
    loc = part.split(".", 2) if part.startswith(f"{VARIANTS}.") else [part]
    return JSONResponse({"detail": [{"loc": [*(at or ["body"]), *loc], "msg": why,
                                     "type": "template"}]}, status_code=422)


@router.put("/events/{event_id}/message", response_model=MessageOut,
            response_model_by_alias=True)
async def edit_message(
    event_id: str, template: Annotated[dict[str, Any], Body()], caller: AdminCaller, db: Db
) -> MessageOut | Response:
    """Edits the draft, or opens a new draft version while the published one keeps
    sending. The body holds the channel's parts: email ``subject``, ``html``, ``text``;
    SMS ``text``; push ``title``, ``body``, ``data``; and ``variants``, a content of
    those parts for each locale tag (``{"fr": {"subject": …}}``), part of the version."""
    config = (await _locked(db, caller, event_id)).config
    template, errors = _variant_problems(config.channel, template)
    if errors:
        return JSONResponse({"detail": errors}, status_code=422)
    try:
        compile_localised(config.channel, template)
    except RenderError as error:
        return _template_error(error)
    versions = await store.message_versions(db, caller.tenant, event_id)
    latest = versions[0].state if versions else None
    if lifecycle.edit_target(latest) == "update":
        await store.update_draft(db, caller.tenant, event_id, template)
    else:
        await store.add_message_version(db, caller.tenant, event_id, template)
    return await _message(db, caller, event_id)


@router.post("/events/{event_id}/message/publish", response_model=MessageOut,
             response_model_by_alias=True)
async def publish_message(event_id: str, caller: AdminCaller, db: Db) -> MessageOut:
    """The draft becomes the published version; the previous one is superseded."""
    await _locked(db, caller, event_id)
    versions = await store.message_versions(db, caller.tenant, event_id)
    lifecycle.check_publish_message(versions[0].state if versions else None)
    for live in (v for v in versions if v.state in (MessageState.PUBLISHED, MessageState.PAUSED)):
        await store.set_message_state(db, caller.tenant, event_id, live.version,
                                      MessageState.SUPERSEDED)
    await store.set_message_state(db, caller.tenant, event_id, versions[0].version,
                                  MessageState.PUBLISHED)
    return await _message(db, caller, event_id)


async def _move_live(
    db: asyncpg.Connection, caller: Caller, event_id: str,
    check: Callable[[MessageState | None], None], to: MessageState,
) -> MessageOut:
    """Move the live (published or paused) version to ``to`` if ``check`` allows it."""
    await _locked(db, caller, event_id)
    versions = await store.message_versions(db, caller.tenant, event_id)
    live = next((v for v in versions
                 if v.state in (MessageState.PUBLISHED, MessageState.PAUSED)), None)
    check(live.state if live else None)
    assert live is not None
    await store.set_message_state(db, caller.tenant, event_id, live.version, to)
    return await _message(db, caller, event_id)


@router.post("/events/{event_id}/message/unpublish", response_model=MessageOut,
             response_model_by_alias=True)
async def unpublish_message(event_id: str, caller: AdminCaller, db: Db) -> MessageOut:
    """Events keep being accepted and end as ``routingFailed`` until a version is published."""
    return await _move_live(db, caller, event_id, lifecycle.check_unpublish_message,
                            MessageState.UNPUBLISHED)


@router.post("/events/{event_id}/message/pause", response_model=MessageOut,
             response_model_by_alias=True)
async def pause_message(event_id: str, caller: AdminCaller, db: Db) -> MessageOut:
    """Events keep being accepted, with status ``paused``, and are held."""
    return await _move_live(db, caller, event_id, lifecycle.check_pause, MessageState.PAUSED)


@router.post("/events/{event_id}/message/resume", response_model=MessageOut,
             response_model_by_alias=True)
async def resume_message(event_id: str, caller: AdminCaller, db: Db) -> MessageOut:
    """Held events are sent within about a second, except those whose expiration passed
    (``tooOld``)."""
    return await _move_live(db, caller, event_id, lifecycle.check_resume, MessageState.PUBLISHED)


async def render_version(
    db: asyncpg.Connection, caller: Caller, event_id: str, version: int | None,
    profile_id: str | None, ctx: dict[str, Any], locale: str | None = None,
    template: dict[str, Any] | None = None,
) -> tuple[int | None, RenderedMessage, dict[str, Any] | None, LocaleChoice]:
    """A version (default: the newest) rendered for a test profile and its sample data,
    which ``ctx`` (read with ``read_exact``) overrides, in the variant ``locale`` chooses
    (else the test profile's locale, as the sender would). A ctx that ingestion would refuse is
    a 422 naming the field: ``["body", "ctx", …]``, or ``["testProfile", "sampleCtx", …]``
    when it comes from the test profile. ``template`` (already checked) is rendered instead
    of a stored version: the answer's version is then None."""
    config = (await _locked(db, caller, event_id)).config
    chosen: tuple[int | None, dict[str, Any]]
    if template is not None:
        chosen = (None, template)
    else:
        versions = await store.message_versions(db, caller.tenant, event_id)
        found = next((v for v in versions if version in (None, v.version)), None)
        if found is None:
            raise HTTPException(404, "no such message version; publish the event to create"
                                " one")
        chosen = (found.version, found.template)
    profile, sample = None, {}
    if profile_id is not None:
        found = await store.find_test_profile(db, caller.tenant, profile_id)
        if found is None:
            raise HTTPException(404, f"no test profile {profile_id!r}")
        profile, sample = found
    # ``event`` as the sender fills it: the event's origin, or a journey's for its messages
    event: dict[str, Any] = {"eventId": event_id, "pKey": "preview"}
    if config.journey_message:
        event = {"journeyId": "preview", "journeyVersion": 0, "nodeId": "preview",
                 "instanceId": "preview"}
    try:  # typed as the sender types it: what the preview shows is what is sent
        typed = admin_typed_ctx(config, exact_json({**sample, **ctx}))
    except ValidationError as error:
        raise RequestValidationError([
            {**e, "loc": ["body", "ctx", *e["loc"]] if e["loc"][:1] and e["loc"][0] in ctx
             else ["testProfile", "sampleCtx", *e["loc"]]}
            for e in error.errors(include_url=False, include_context=False,
                                  include_input=False)]) from error
    try:
        compiled, choice = compile_localised(config.channel, chosen[1]).choose(
            locale or (profile or {}).get("locale"))
        rendered = render_message(compiled, template_context(typed, profile, event))
    except RenderError as error:
        raise HTTPException(422, f"the template does not render: {error}") from error
    return chosen[0], rendered, profile, choice


@router.post("/events/{event_id}/message/preview", response_model=PreviewOut,
             response_model_by_alias=True)
async def preview_message(
    event_id: str, preview: PreviewIn, caller: AdminCaller, db: Db, request: Request
) -> PreviewOut | Response:
    # ctx again from the body's text: FastAPI read its numbers as floats (19.90 -> 19.9)
    ctx = read_exact(await request.body()).get("ctx") or {}
    template = None
    if preview.template is not None:  # an editor's unsaved parts, checked as PUT checks them
        config = (await _locked(db, caller, event_id)).config
        template, errors = _variant_problems(config.channel, preview.template)
        errors = [{**e, "loc": ["body", "template", *e["loc"][1:]]} for e in errors]
        if errors:
            return JSONResponse({"detail": errors}, status_code=422)
        try:
            compile_localised(config.channel, template)
        except RenderError as error:
            return _template_error(error, ["body", "template"])
    version, rendered, _, choice = await render_version(
        db, caller, event_id, preview.version, preview.profile_id, ctx, preview.locale,
        template)
    return PreviewOut(version=version, parts=rendered.parts, data=rendered.data,
                      locale=choice.locale, chosen_from=choice.chosen_from)


async def readiness(request: Request) -> bool:
    """Ready when PostgreSQL answers; while it does not, the error is a 500."""
    await request.app.state.pool.fetchval("SELECT 1")
    return True
