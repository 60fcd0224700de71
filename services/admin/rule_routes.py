"""Delivery rules, typologies and the rules' settings through the admin API.

A rule is one JSON object whose ``kind`` says which (``filtering``, ``capacity``,
``control``, ``fatigue``, ``quietHours``: ``shared/domain/delivery_rules/model.py``); the
store gives its id (``r1``, ``r2``…). A typology is an ordered list of filtering, capacity
and control rules (``t1``, ``t2``…); at most one per tenant is the default. A 422 names the
field, inside a filtering rule's condition too (``["body", "condition", "all", 1, "path"]``);
a 409 says what to do instead. The services see a change within their cache's time
(``TenantRulesCache``), at once where they listen for ``parcours_rules``.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, HTTPException, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.admin.dependencies import AdminCaller, Db
from shared.adapters import rule_admin_store as store
from shared.adapters.profile_schema_store import load_schema
from shared.domain.audiences import profile_paths
from shared.domain.conditions import ConditionError, check_condition
from shared.domain.conditions.model import tree_loc
from shared.domain.delivery_rules.model import (
    TYPOLOGY_KINDS,
    CapacityRule,
    ControlRule,
    FatigueRule,
    FilteringRule,
    Name,
    QuietHoursRule,
)
from shared.domain.delivery_rules.tenant import RULE, RuleSettings
from shared.domain.profile_schema import AttributeType

router = APIRouter(prefix="/admin/v1", tags=["delivery rules"])
MAX_TYPOLOGY_RULES = 100
RuleBody = Annotated[dict[str, Any], Body(description="one rule: its kind and fields")]


class RuleRow(BaseModel):
    ruleId: str
    kind: str
    name: str
    enabled: bool
    summary: str


class TypologyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    ruleIds: list[str] = Field(default_factory=list, max_length=MAX_TYPOLOGY_RULES,
                               description="filtering, capacity and control rules, in the"
                                           " order they run")
    isDefault: bool = Field(default=False, description="what marketing messages that name"
                                                       " no typology pass")


class TypologyOut(BaseModel):
    typologyId: str
    name: str
    ruleIds: list[str]
    isDefault: bool
    updatedAt: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> TypologyOut:
        return cls(typologyId=row["typology_id"], name=row["name"],
                   ruleIds=list(row["rule_ids"]), isDefault=row["is_default"],
                   updatedAt=row["updated_at"])


def _unprocessable(problems: list[dict[str, Any]]) -> RequestValidationError:
    return RequestValidationError([{"type": p.get("type", "value_error"), "loc": p["loc"],
                                    "msg": p["msg"]} for p in problems])


def _rule_problems(body: dict[str, Any], error: ValidationError) -> list[dict[str, Any]]:
    """pydantic's locations as the body reads them: without the union's tag, a
    condition's as the tree reads it (``tree_loc``)."""
    kind = body.get("kind")
    problems = []
    for e in error.errors(include_url=False, include_context=False, include_input=False):
        loc = list(e["loc"])
        if loc[:1] == [kind]:
            loc = loc[1:]
        if not loc:
            loc = ["maxBytes"] if kind == "control" else ["kind"]
        elif loc[0] == "condition":
            loc = ["condition", *tree_loc(tuple(loc[1:]))]
        problems.append({"loc": ["body", *loc], "msg": e["msg"], "type": e["type"]})
    return problems


async def _checked_rule(db: asyncpg.Connection, tenant: str, body: dict[str, Any]) -> Any:
    """The rule the body holds, checked against the tenant's profile schema."""
    try:
        rule = RULE.validate_python(body)
    except ValidationError as error:
        raise _unprocessable(_rule_problems(body, error)) from None
    schema = (await load_schema(db, tenant)).schema
    if isinstance(rule, FilteringRule):
        try:
            check_condition(rule.condition, profile_paths(schema))
        except ConditionError as error:
            raise _unprocessable([{"loc": ["body", "condition", *p.loc], "msg": p.msg,
                                   "type": "condition"} for p in error.problems]) from None
    if isinstance(rule, FatigueRule) and rule.maxFrom is not None:
        name = rule.maxFrom.removeprefix("attributes.")
        if schema.attribute_types().get(name) is not AttributeType.INTEGER:
            raise _unprocessable([{"loc": ["body", "maxFrom"], "msg":
                                   f"{rule.maxFrom} is not an integer attribute of the profile"
                                   " schema (GET /admin/v1/profile-schema)"}])
    return rule


def _stored(rule: Any) -> dict[str, Any]:
    return RULE.dump_python(rule, mode="json", exclude_none=True)  # type: ignore[no-any-return]


def _out(row: dict[str, Any]) -> dict[str, Any]:
    """The kind first, then the model's order of fields (jsonb keeps its own)."""
    rule = _stored(RULE.validate_python(row["definition"]))
    return {"ruleId": row["rule_id"], "kind": rule.pop("kind"), **rule}


def _period(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} s"


def _condition(node: dict[str, Any]) -> str:
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        return "(" + f" {'and' if key == 'all' else 'or'} ".join(
            _condition(n) for n in node[key]) + ")"
    if "not" in node:
        return f"not {_condition(node['not'])}"
    if node["op"] == "within":
        side = "last" if "last" in node else "next"
        (unit, count), = node[side].items()
        return f"{node['path']} within the {side} {count} {unit}"
    rest = " ".join(f"{k}={v}" if k != "value" else str(v) for k, v in node.items()
                    if k not in ("path", "op"))
    return f"{node['path']} {node['op']} {rest}".strip()


def _clock(moment: time) -> str:
    return moment.strftime("%H:%M")


def summary(rule: Any) -> str:
    """One line of what the rule does, for tables."""
    if isinstance(rule, FilteringRule):
        return f"excludes {_condition(_stored(rule)['condition'])}"
    if isinstance(rule, CapacityRule):
        return f"at most {rule.max} per {rule.scope} per {_period(rule.period)}"
    if isinstance(rule, ControlRule):
        return ", ".join(f"maxBytes {rule.maxBytes}" if c == "maxBytes" else c
                         for c in rule.checks)
    channels = ", ".join(rule.channels) or "all channels"
    if isinstance(rule, FatigueRule):
        cap = f"{rule.max}" + (f" (or {rule.maxFrom})" if rule.maxFrom else "")
        return (f"at most {cap} on {channels} per {_period(rule.period)}, {rule.atCap} at the"
                f" cap, transactional {rule.transactional}")
    assert isinstance(rule, QuietHoursRule)
    return (f"{channels}: quiet {_clock(rule.start)}-{_clock(rule.end)} local,"
            f" transactional {rule.transactional}")


async def _rule_row(db: asyncpg.Connection, tenant: str, rule_id: str) -> dict[str, Any]:
    row = await store.get_rule(db, tenant, rule_id)
    if row is None:
        raise HTTPException(404, f"no rule {rule_id!r}; GET /admin/v1/rules lists them")
    return row


# --- rules -------------------------------------------------------------------------------

@router.post("/rules", status_code=201)
async def create_rule(body: RuleBody, caller: AdminCaller, db: Db) -> dict[str, Any]:
    rule = await _checked_rule(db, caller.tenant, body)
    await store.lock_rules(db, caller.tenant)
    return _out(await store.create_rule(db, caller.tenant, rule.kind, _stored(rule)))


@router.get("/rules", response_model=list[RuleRow])
async def list_rules(caller: AdminCaller, db: Db) -> list[RuleRow]:
    rows = []
    for row in await store.list_rules(db, caller.tenant):
        rule = RULE.validate_python(row["definition"])
        rows.append(RuleRow(ruleId=row["rule_id"], kind=rule.kind, name=rule.name,
                            enabled=rule.enabled, summary=summary(rule)))
    return rows


@router.get("/rules/{rule_id}")
async def get_rule(rule_id: str, caller: AdminCaller, db: Db) -> dict[str, Any]:
    return _out(await _rule_row(db, caller.tenant, rule_id))


@router.put("/rules/{rule_id}")
async def replace_rule(rule_id: str, body: RuleBody, caller: AdminCaller, db: Db
                       ) -> dict[str, Any]:
    rule = await _checked_rule(db, caller.tenant, body)
    await store.lock_rules(db, caller.tenant)
    stored = await _rule_row(db, caller.tenant, rule_id)
    if stored["kind"] != rule.kind:
        raise HTTPException(409, f"rule {rule_id} is a {stored['kind']} rule and stays one;"
                                 f" create a {rule.kind} rule with POST /admin/v1/rules")
    return _out(await store.replace_rule(db, caller.tenant, rule_id, _stored(rule)))


@router.delete("/rules/{rule_id}", status_code=204)
async def delete_rule(rule_id: str, caller: AdminCaller, db: Db) -> Response:
    await store.lock_rules(db, caller.tenant)
    await _rule_row(db, caller.tenant, rule_id)
    if typologies := await store.typologies_with(db, caller.tenant, rule_id):
        raise HTTPException(409, f"rule {rule_id} is in typologies {', '.join(typologies)};"
                                 " take it out of them first (PUT /admin/v1/typologies/{id})")
    await store.delete_rule(db, caller.tenant, rule_id)
    return Response(status_code=204)


# --- typologies --------------------------------------------------------------------------

async def _check_typology(db: asyncpg.Connection, tenant: str, body: TypologyIn) -> None:
    kinds = await store.rule_kinds(db, tenant, body.ruleIds)
    problems, seen = [], set()
    for i, rule_id in enumerate(body.ruleIds):
        kind = kinds.get(rule_id)
        if rule_id in seen:
            msg = f"{rule_id} is listed twice"
        elif kind is None:
            msg = f"no rule {rule_id!r}; create it with POST /admin/v1/rules"
        elif kind not in TYPOLOGY_KINDS:
            msg = (f"{rule_id} is a {kind} rule: fatigue and quiet hours apply to every"
                   " message of the tenant, a typology holds filtering, capacity and control"
                   " rules")
        else:
            seen.add(rule_id)
            continue
        problems.append({"loc": ["body", "ruleIds", i], "msg": msg})
    if problems:
        raise _unprocessable(problems)


@router.post("/typologies", status_code=201, response_model=TypologyOut)
async def create_typology(body: TypologyIn, caller: AdminCaller, db: Db) -> TypologyOut:
    await store.lock_rules(db, caller.tenant)
    await _check_typology(db, caller.tenant, body)
    return TypologyOut.of(await store.create_typology(db, caller.tenant, body.name,
                                                      body.ruleIds, body.isDefault))


@router.get("/typologies", response_model=list[TypologyOut])
async def list_typologies(caller: AdminCaller, db: Db) -> list[TypologyOut]:
    return [TypologyOut.of(r) for r in await store.list_typologies(db, caller.tenant)]


@router.get("/typologies/{typology_id}", response_model=TypologyOut)
async def get_typology(typology_id: str, caller: AdminCaller, db: Db) -> TypologyOut:
    row = await store.get_typology(db, caller.tenant, typology_id)
    if row is None:
        raise HTTPException(404, f"no typology {typology_id!r}")
    return TypologyOut.of(row)


@router.put("/typologies/{typology_id}", response_model=TypologyOut)
async def replace_typology(typology_id: str, body: TypologyIn, caller: AdminCaller, db: Db
                           ) -> TypologyOut:
    """Replace it: name, rules in their order, default or not (made default, it is the
    only one: the others are no longer)."""
    await store.lock_rules(db, caller.tenant)
    await _check_typology(db, caller.tenant, body)
    row = await store.replace_typology(db, caller.tenant, typology_id, body.name,
                                       body.ruleIds, body.isDefault)
    if row is None:
        raise HTTPException(404, f"no typology {typology_id!r}")
    return TypologyOut.of(row)


@router.delete("/typologies/{typology_id}", status_code=204)
async def delete_typology(typology_id: str, caller: AdminCaller, db: Db) -> Response:
    await store.lock_rules(db, caller.tenant)
    # Deleted first, looked for after: an event configuration saved meanwhile holds the
    # row (``typology_exists``), so the delete waits for it and the look sees it.
    if not await store.delete_typology(db, caller.tenant, typology_id):
        raise HTTPException(404, f"no typology {typology_id!r}")
    if events := await store.events_naming(db, caller.tenant, typology_id):
        raise HTTPException(409, f"typology {typology_id} is named by the events"
                                 f" {', '.join(events)}; give them another typology"
                                 " (PUT /admin/v1/events/{eventId}) or unpublish them first")
    return Response(status_code=204)


# --- settings ----------------------------------------------------------------------------

@router.get("/rule-settings", response_model=RuleSettings)
async def get_rule_settings(caller: AdminCaller, db: Db) -> RuleSettings:
    return RuleSettings.model_validate(await store.load_settings(db, caller.tenant))


@router.put("/rule-settings", response_model=RuleSettings)
async def put_rule_settings(settings: RuleSettings, caller: AdminCaller, db: Db
                            ) -> RuleSettings:
    """The time zone of profiles without one, and quarantine's thresholds."""
    await store.save_settings(db, caller.tenant, settings.model_dump(mode="json"))
    return settings
