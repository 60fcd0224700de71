"""The one decision every profile-based message passes before it is sent, pure:
(message, facts about its recipient, rules, now) → send, exclude, or defer.

Order: the address (denylist, quarantine), consent, the message's typology in its order
(filtering, capacity; control runs in the sender, on the rendered message), fatigue, quiet
hours. The first rule that does not pass decides; every rule still gives its verdict, so
a dry run can show them all. An event-based message has no profile: only the address
rules apply to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from shared.domain.conditions import Checked, ConditionDataError, matches
from shared.domain.delivery_rules.model import (
    CapacityRule,
    FatigueRule,
    QuietHoursRule,
    RuleKind,
)
from shared.domain.delivery_rules.quiet_hours import quiet_until
from shared.domain.delivery_rules.window import first_allowed, from_micros, micros

Outcome = Literal["send", "exclude", "defer"]


@dataclass(frozen=True)
class Candidate:
    """A message being decided."""

    message_id: str
    channel: str
    origin_id: str  # the event's id, or the journey's: what capacity ``scope: message`` counts
    transactional: bool  # a transactional event not marked marketing
    contact_at: datetime  # when it would go: now, or its scheduled time
    profile_based: bool = True
    topic: str | None = None  # a subscription the message needs
    held_at_cap: bool = False  # a journey's message: deferred at a capacity rule's cap


@dataclass(frozen=True)
class Contact:
    """A message of the profile's contact history (sent, or deferred to ``at``)."""

    channel: str
    at: datetime
    transactional: bool


@dataclass(frozen=True)
class Facts:
    """What the adapters read about the recipient. ``profile`` is the record conditions
    see (``city``, ``attributes.<name>``, ``consent.<channel>.marketing``…)."""

    profile: Mapping[str, Any] | None = None
    history: Sequence[Contact] = ()
    capacity_used: Mapping[str, int] = field(default_factory=dict)  # rule id → count
    # rule id → the first instant one more message fits (read when the rule is at its cap)
    capacity_frees: Mapping[str, datetime] = field(default_factory=dict)
    denylisted: str | None = None  # the entry that matches the address
    quarantined: str | None = None  # why the address is in quarantine
    time_zone: ZoneInfo | None = None  # the profile's, else the tenant's


@dataclass(frozen=True)
class Filtering:
    rule_id: str
    name: str
    condition: Checked


@dataclass(frozen=True)
class Rules:
    """A tenant's rules as they apply to one message: its typology's, in order, and the
    tenant-wide ones."""

    typology: Sequence[tuple[str, Filtering | CapacityRule]] = ()
    fatigue: Sequence[tuple[str, FatigueRule]] = ()
    quiet_hours: Sequence[tuple[str, QuietHoursRule]] = ()


@dataclass(frozen=True)
class Verdict:
    rule_id: str
    kind: RuleKind
    outcome: Literal["pass", "exclude", "defer", "notApplicable"]
    reason: str = ""
    until: datetime | None = None


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    deciding: Verdict | None  # the first verdict that did not pass
    trace: tuple[Verdict, ...]

    @property
    def reason(self) -> str:
        """For the event's status: the rule and why."""
        if self.deciding is None:
            return ""
        return f"rule {self.deciding.rule_id} ({self.deciding.kind}): {self.deciding.reason}"


def _pass(rule_id: str, kind: RuleKind, reason: str = "") -> Verdict:
    return Verdict(rule_id, kind, "pass", reason)


def _address(candidate: Candidate, facts: Facts) -> list[Verdict]:
    verdicts = [
        Verdict("denylist", RuleKind.DENYLIST, "exclude",
                f"the address is on the denylist ({facts.denylisted})")
        if facts.denylisted else _pass("denylist", RuleKind.DENYLIST),
        Verdict("quarantine", RuleKind.QUARANTINE, "exclude",
                f"the address is in quarantine: {facts.quarantined}")
        if facts.quarantined else _pass("quarantine", RuleKind.QUARANTINE),
    ]
    return verdicts


def _consent(candidate: Candidate, profile: Mapping[str, Any]) -> Verdict:
    consent = (profile.get("consent") or {}).get(candidate.channel) or {}
    if consent.get("blocked"):
        return Verdict("consent", RuleKind.CONSENT, "exclude",
                       f"the profile's {candidate.channel} channel is blocked")
    if not candidate.transactional:
        state = consent.get("marketing", "unknown")
        if state != "opted-in":
            return Verdict("consent", RuleKind.CONSENT, "exclude",
                           f"no marketing consent on {candidate.channel} ({state})")
    if candidate.topic is not None:
        subscribed = ((profile.get("topics") or {}).get(candidate.topic) or {}).get("subscribed")
        if not subscribed:
            return Verdict("consent", RuleKind.CONSENT, "exclude",
                           f"not subscribed to topic {candidate.topic!r}")
    return _pass("consent", RuleKind.CONSENT)


def _filtering(rule_id: str, rule: Filtering, profile: Mapping[str, Any], now: datetime
               ) -> Verdict:
    try:
        matched = matches(rule.condition, profile, now=now)
    except ConditionDataError as error:  # a value not of its path's type: say so, send not
        return Verdict(rule_id, RuleKind.FILTERING, "exclude",
                       f"{rule.name!r} could not be evaluated: {error}")
    if matched:
        return Verdict(rule_id, RuleKind.FILTERING, "exclude", f"{rule.name!r} matches")
    return _pass(rule_id, RuleKind.FILTERING)


def _capacity(rule_id: str, rule: CapacityRule, used: int, candidate: Candidate,
              frees: datetime | None) -> Verdict:
    if used + 1 > rule.max:
        said = f"{rule.name!r}: {used} of {rule.max} per {_period(rule.period)} used"
        if (candidate.held_at_cap or rule.atCap == "defer") and frees is not None:
            return Verdict(rule_id, RuleKind.CAPACITY, "defer", said, frees)
        return Verdict(rule_id, RuleKind.CAPACITY, "exclude", said)
    return _pass(rule_id, RuleKind.CAPACITY)


def fatigue_cap(rule: FatigueRule, profile: Mapping[str, Any] | None) -> int:
    """The rule's cap for this profile: its ``maxFrom`` attribute when it is a whole
    number of 0 or more, else ``max``."""
    if rule.maxFrom is None or profile is None:
        return rule.max
    value = (profile.get("attributes") or {}).get(rule.maxFrom.split(".", 1)[1])
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return rule.max
    return value


def _contact_times(history: Sequence[Contact]) -> list[tuple[int, str]]:
    """The contacts as (microseconds, channel), sorted: converted once per message, not
    once per rule."""
    return sorted((micros(c.at), c.channel) for c in history)


def _fatigue(rule_id: str, rule: FatigueRule, candidate: Candidate, facts: Facts,
             contacts: list[tuple[int, str]]) -> Verdict:
    if rule.channels and candidate.channel not in rule.channels:
        return Verdict(rule_id, RuleKind.FATIGUE, "notApplicable", "another channel")
    if candidate.transactional and rule.transactional == "exempt":
        return _pass(rule_id, RuleKind.FATIGUE, "transactional: counted, not capped")
    cap = fatigue_cap(rule, facts.profile)
    period = micros_of(rule.period)
    times = [at for at, channel in contacts
             if not rule.channels or channel in rule.channels]
    at = micros(candidate.contact_at)
    allowed = first_allowed(times, at, cap, period)
    if allowed == at:
        return _pass(rule_id, RuleKind.FATIGUE)
    said = f"{rule.name!r}: at most {cap} per {_period(rule.period)}"
    if rule.atCap == "defer" and allowed is not None:
        return Verdict(rule_id, RuleKind.FATIGUE, "defer", said, from_micros(allowed))
    return Verdict(rule_id, RuleKind.FATIGUE, "exclude", said)


def _quiet_hours(rule_id: str, rule: QuietHoursRule, candidate: Candidate, facts: Facts
                 ) -> Verdict:
    if candidate.channel not in rule.channels:
        return Verdict(rule_id, RuleKind.QUIET_HOURS, "notApplicable", "another channel")
    if candidate.transactional and rule.transactional == "exempt":
        return _pass(rule_id, RuleKind.QUIET_HOURS, "transactional: exempt")
    zone = facts.time_zone or ZoneInfo("UTC")
    until = quiet_until(candidate.contact_at, rule.start, rule.end, zone)
    if until is None:
        return _pass(rule_id, RuleKind.QUIET_HOURS)
    return Verdict(rule_id, RuleKind.QUIET_HOURS, "defer",
                   f"{rule.name!r}: quiet from {rule.start:%H:%M} to {rule.end:%H:%M}"
                   f" in {zone.key}", until)


def micros_of(period: timedelta) -> int:
    return period // timedelta(microseconds=1)


def _period(period: timedelta) -> str:
    seconds = int(period.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def decide(candidate: Candidate, facts: Facts, rules: Rules, now: datetime) -> Decision:
    trace = _address(candidate, facts)
    if candidate.profile_based and facts.profile is not None:
        profile = facts.profile
        trace.append(_consent(candidate, profile))
        for rule_id, rule in rules.typology:
            if isinstance(rule, Filtering):
                trace.append(_filtering(rule_id, rule, profile, now))
            else:
                trace.append(_capacity(rule_id, rule, facts.capacity_used.get(rule_id, 0),
                                       candidate, facts.capacity_frees.get(rule_id)))
        contacts = _contact_times(facts.history) if rules.fatigue else []
        trace += [_fatigue(rule_id, rule, candidate, facts, contacts)
                  for rule_id, rule in rules.fatigue]
        trace += [_quiet_hours(rule_id, rule, candidate, facts)
                  for rule_id, rule in rules.quiet_hours]
    deciding = next((v for v in trace if v.outcome in ("exclude", "defer")), None)
    outcome: Outcome = "send" if deciding is None else (
        "exclude" if deciding.outcome == "exclude" else "defer")
    return Decision(outcome, deciding, tuple(trace))
