"""The decision step: every message, before it goes to its sender, passes the tenant's
delivery rules (``shared/domain/delivery_rules``) — transactional events' messages from
the processor now, journey nodes' messages from the journey engine next.

Correct under concurrency: the step holds a transaction-scoped advisory lock per profile
(and per capacity rule in play) while it reads the contact history, decides and records
its decisions, so two messages for one profile decided at the same instant — by two
processor workers, from two partitions, or two journeys — are decided one after the
other, the second seeing the first in the history. Within a batch, each decision is added
to the history the next ones see.

Idempotent: a message already decided (a redelivered record) keeps its decision; only a
deferred message come due (``redecide``) is decided again, under the rules of that moment.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from shared.adapters import contact_history
from shared.adapters.contact_history import HistoryRow, Recorded
from shared.adapters.profile_schema_store import ProfileSchemaCache
from shared.adapters.rules_store import TenantRulesCache
from shared.domain.conditions import ConditionError
from shared.domain.delivery_rules import (
    Candidate,
    CapacityRule,
    Contact,
    Decision,
    Facts,
    RuleKind,
    Rules,
    Verdict,
    decide,
)
from shared.domain.delivery_rules.addresses import lookup_keys, recipient_address
from shared.domain.delivery_rules.recipient import condition_record
from shared.domain.delivery_rules.tenant import TenantRules
from shared.domain.routing import EventOrigin, SendRequest
from shared.domain.status import Status, StatusWrite

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pending:
    """A message to decide."""

    request: SendRequest
    transactional: bool
    topic: str | None = None
    typology: str | None = None  # the event configuration's (None: the tenant's choice)
    contact_at: datetime | None = None  # when it would go (None: now)
    redecide: bool = False  # a deferred message come due


@dataclass(frozen=True)
class Decided:
    request: SendRequest  # with the typology it was decided under
    outcome: str  # send, exclude, defer
    reason: str = ""  # "rule r3 (fatigue): …" for an exclusion or a deferral
    until: datetime | None = None  # a deferral's
    kind: RuleKind | None = None  # of the deciding rule, for metrics (None: decided before)
    rule_id: str | None = None  # the deciding rule's
    fresh: bool = True  # decided now, not read back
    verdicts: tuple[dict[str, Any], ...] = ()  # every rule's, in order (a fresh decision)


@dataclass
class Step:
    """What the step reads besides the database: the tenants' rules and profile schemas."""

    rules: TenantRulesCache
    schemas: ProfileSchemaCache


def _origin_id(request: SendRequest) -> str:
    origin = request.origin
    return origin.eventId if isinstance(origin, EventOrigin) else origin.journeyId


def _reused(request: SendRequest, recorded: Recorded) -> Decided:
    outcome = {"excluded": "exclude", "deferred": "defer"}.get(recorded.outcome, "send")
    return Decided(request, outcome, recorded.reason or "",
                   recorded.contact_at if outcome == "defer" else None, fresh=False)


class _Tenant:
    """One tenant's part of a batch, with what the step read for it."""

    def __init__(self, tenant: str, rules: TenantRules, pendings: list[Pending]) -> None:
        self.tenant = tenant
        self.rules = rules
        self.pendings = pendings
        self.message_rules: dict[str | None, Rules | ConditionError] = {}

    def typology(self, pending: Pending) -> str | None:
        return self.rules.typology_for(pending.typology, pending.transactional)


async def decide_messages(connection: asyncpg.Connection, step: Step,
                          pendings: Sequence[Pending], now: datetime, *, record: bool = True,
                          begun: set[str] | None = None) -> list[Decided]:
    """Decide every message, in order: per tenant, one statement reads what is known (the
    messages already decided, the address lists), one records the decisions and their
    trace; the profiles' reads and the locks come on top when profiles or capacity rules
    are in play. ``record=False`` is a dry run: nothing locked, nothing written, every
    message decided afresh.

    ``begun`` (the processor's): the events of the messages decided ``send`` are marked
    ``processing`` in the statement that records the decisions, unless they already ended
    (``status_store.begin_processing``); the pKeys that may go on are added to it."""
    if not pendings:
        return []
    by_tenant: dict[str, list[Pending]] = defaultdict(list)
    for pending in pendings:
        by_tenant[pending.request.tenant].append(pending)
    parts = []
    for tenant, group in by_tenant.items():
        part = _Tenant(tenant, await step.rules.get(tenant), group)
        schema = (await step.schemas.get(tenant)).schema
        for pending in group:
            typology = part.typology(pending)
            if typology not in part.message_rules:
                try:
                    part.message_rules[typology] = part.rules.for_message(typology, schema)
                except ConditionError as error:
                    part.message_rules[typology] = error
        parts.append(part)
    # The locks hold until the decisions are recorded: a transaction. Without a lock to
    # take (messages without a profile, no capacity rule in play: an event-based
    # transactional batch) a tenant's part is one read and one write statement, and a
    # transaction would add nothing but its BEGIN and COMMIT round trips.
    locking = record and any(_lock_keys(part) for part in parts)
    decided: dict[int, Decided] = {}
    async with connection.transaction() if locking else contextlib.nullcontext():
        for part in parts:
            outcomes = await _decide_tenant(connection, part, now, record, begun)
            for pending, outcome in zip(part.pendings, outcomes, strict=True):
                decided[id(pending)] = outcome
    return [decided[id(p)] for p in pendings]


def _profile_ids(pendings: Sequence[Pending]) -> list[str]:
    return sorted({p.request.profileId for p in pendings
                   if p.request.profile is not None and p.request.profileId})


def _capacity(part: _Tenant) -> dict[tuple[str, str], CapacityRule]:
    """The capacity rules in play, by (rule id, what it counts)."""
    return {(rule_id, value): rule for p in part.pendings
            for rule_id, rule, value in _capacity_keys(part, p)}


def _lock_keys(part: _Tenant) -> list[str]:
    """The advisory locks deciding this part takes: its profiles, its capacity counts."""
    return ([f"profile/{part.tenant}/{p}" for p in _profile_ids(part.pendings)]
            + [f"capacity/{part.tenant}/{r}/{v}" for r, v in _capacity(part)])


def _capacity_keys(part: _Tenant, pending: Pending) -> list[tuple[str, CapacityRule, str]]:
    """(rule id, rule, what it counts: the message's origin or its channel)."""
    rules = part.message_rules.get(part.typology(pending))
    if not isinstance(rules, Rules):
        return []
    request = pending.request
    return [(rule_id, rule, _origin_id(request) if rule.scope == "message"
             else request.channel.value)
            for rule_id, rule in rules.typology if isinstance(rule, CapacityRule)]


async def _decide_tenant(connection: asyncpg.Connection, part: _Tenant, now: datetime,
                         record: bool, begun: set[str] | None = None) -> list[Decided]:
    tenant, pendings = part.tenant, part.pendings
    ids = [p.request.messageId for p in pendings]
    profile_ids = _profile_ids(pendings)
    capacity = _capacity(part)
    if record:
        await contact_history.lock(connection, _lock_keys(part))
    addresses = {id(p): _address_keys(p.request) for p in pendings}
    keys = sorted({k for ks in addresses.values() for k in ks})
    # Quarantine holds addresses, never domains.
    known = await contact_history.known(
        connection, tenant, ids if record else [], keys,
        [(c, a) for c, a in keys if c != "email" or "@" in a], now)
    recorded, denied, quarantined = known.recorded, known.denied, known.quarantined

    fatigue = [rule for _, rule in part.rules.fatigue()]
    history: dict[str, list[Contact]] = defaultdict(list)
    if fatigue and profile_ids:
        reach = max(rule.period for rule in fatigue)
        times = [p.contact_at or now for p in pendings]
        for row in await contact_history.contacts(connection, tenant, profile_ids,
                                                  min(times) - reach, max(times) + reach, ids):
            history[row["profile_id"]].append(
                Contact(row["channel"], row["contact_at"], row["transactional"]))
    consents = await contact_history.consents(connection, tenant, profile_ids) \
        if profile_ids else {}
    used = {key: await contact_history.used(connection, tenant, _column(rule, key[1]), key[1],
                                            now - rule.period, now, ids)
            for key, rule in capacity.items()}
    counted = dict(used)  # what the table holds; ``used`` adds this batch's as they go

    async def frees(rule: CapacityRule, key: tuple[str, str]) -> datetime:
        """When one more fits under a rule at its cap: a period after the message whose
        leaving the window makes room; one of this batch's (counted at ``now``), a period
        after now."""
        nth = used[key] - rule.max
        at = None if nth >= counted[key] else await contact_history.nth_counted(
            connection, tenant, _column(rule, key[1]), key[1], now - rule.period, now, ids,
            nth)
        return (at or now) + rule.period + timedelta(microseconds=1)

    out: list[Decided] = []
    rows: list[HistoryRow] = []
    for pending in pendings:
        request = pending.request.model_copy(update={"typology": part.typology(pending)})
        already = recorded.get(request.messageId)
        # A deferral (or a scheduled send's reservation) is decided again once due.
        due = already is not None and already.outcome == "deferred" and (
            pending.redecide or already.contact_at <= (pending.contact_at or now))
        if already is not None and not due:
            out.append(_reused(request, already))
            continue
        profile_id = request.profileId if request.profile is not None else None
        recipient = condition_record(request.profile or {}, [
            (r["kind"], r["name"], r["value"]) for r in consents.get(profile_id or "", [])
        ]) if profile_id else None
        caps = _capacity_keys(part, pending)
        held_at_cap = request.origin.kind == "journey"
        facts = Facts(
            profile=recipient, history=tuple(history.get(profile_id or "", ())),
            capacity_used={rule_id: used[(rule_id, value)] for rule_id, _, value in caps},
            capacity_frees={rule_id: await frees(rule, (rule_id, value))
                            for rule_id, rule, value in caps
                            if used[(rule_id, value)] >= rule.max
                            and (held_at_cap or rule.atCap == "defer")},
            denylisted=next((denied[k] for k in addresses[id(pending)] if k in denied), None),
            quarantined=next((quarantined[k] for k in addresses[id(pending)]
                              if k in quarantined), None),
            time_zone=part.rules.time_zone((request.profile or {}).get("time_zone")))
        candidate = Candidate(
            message_id=request.messageId, channel=request.channel.value,
            origin_id=_origin_id(request), transactional=pending.transactional,
            contact_at=pending.contact_at or now, profile_based=profile_id is not None,
            topic=pending.topic, held_at_cap=held_at_cap)
        rules = part.message_rules.get(part.typology(pending))
        decision = _broken_typology(request, rules) if isinstance(rules, ConditionError) \
            else decide(candidate, facts, rules or Rules(), now)
        decided = _decided(request, decision)
        out.append(decided)
        verdicts = list(decided.verdicts)
        if decided.outcome != "exclude":
            at = decided.until or candidate.contact_at
            if profile_id:
                history[profile_id].append(Contact(candidate.channel, at,
                                                   pending.transactional))
            for rule_id, _, value in caps:
                used[(rule_id, value)] += 1
        rows.append(HistoryRow(
            request.messageId, profile_id, candidate.channel, request.origin.kind,
            candidate.origin_id, pending.transactional, decided.until or candidate.contact_at,
            {"send": "sent", "exclude": "excluded", "defer": "deferred"}[decided.outcome],
            decision.deciding.rule_id if decision.deciding else None, decided.reason or None,
            verdicts))
    if record:
        going = [] if begun is None else [
            StatusWrite(d.request.event.pKey, tenant, d.request.event.eventId,
                        Status.PROCESSING, None, d.request.messageId)
            for d in out if d.outcome == "send" and d.request.event is not None]
        allowed = await contact_history.write(connection, tenant, rows, begin=going)
        if begun is not None:
            begun.update(allowed)
    return out


def _column(rule: CapacityRule, _value: str) -> str:
    return "origin_id" if rule.scope == "message" else "channel"


def _address_keys(request: SendRequest) -> list[tuple[str, str]]:
    channel = request.channel.value
    address = recipient_address(channel, request.to)
    return [(channel, key) for key in lookup_keys(channel, address)] if address else []


def _broken_typology(request: SendRequest, error: ConditionError) -> Decision:
    verdict = Verdict(request.typology or "typology", RuleKind.FILTERING, "exclude",
                      f"the typology's filtering rule cannot be applied ({error}); fix it")
    return Decision("exclude", verdict, (verdict,))


def _decided(request: SendRequest, decision: Decision) -> Decided:
    deciding = decision.deciding
    return Decided(request, decision.outcome, decision.reason,
                   deciding.until if deciding else None, deciding.kind if deciding else None,
                   deciding.rule_id if deciding else None,
                   verdicts=tuple(_verdict_json(v) for v in decision.trace))


def _verdict_json(verdict: Verdict) -> dict[str, Any]:
    return {"rule": verdict.rule_id, "kind": verdict.kind.value, "outcome": verdict.outcome,
            **({"reason": verdict.reason} if verdict.reason else {}),
            **({"until": verdict.until.isoformat()} if verdict.until else {})}


def deferral_reason(decided: Decided) -> str:
    """A deferred event's status reason: when, and which rule."""
    assert decided.until is not None
    return f"deferred until {decided.until.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}: {decided.reason}"
