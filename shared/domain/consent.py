"""Consent and subscriptions, per profile.

Per channel, a *marketing* consent (opted-in, opted-out, unknown) and a *block* (the
address receives nothing at all, transactional messages included); per topic of the
tenant's schema, a subscription. Each value carries when it changed and where from.
An unsubscribe withdraws marketing consent only: transactional messages (a password
reset) still go, unless the channel is blocked (``may_receive``).

Stored as rows ``(kind, name, value, changed_at, source)``; a later change wins by its
timestamp, and every change is kept as history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool


class ConsentKind(StrEnum):
    MARKETING = "marketing"
    BLOCK = "block"
    TOPIC = "topic"


class Marketing(StrEnum):
    OPTED_IN = "opted-in"
    OPTED_OUT = "opted-out"
    UNKNOWN = "unknown"


CHANNELS = ("email", "sms", "push")
BLOCKED, UNBLOCKED = "blocked", "unblocked"
SUBSCRIBED, UNSUBSCRIBED = "subscribed", "unsubscribed"


@dataclass(frozen=True)
class ConsentChange:
    kind: ConsentKind
    name: str  # a channel, or a topic id
    value: str


def unsubscribe(channel: str) -> ConsentChange:
    """What an unsubscribe link records: marketing consent withdrawn, nothing else."""
    return ConsentChange(ConsentKind.MARKETING, channel, Marketing.OPTED_OUT.value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChannelConsentIn(_Strict):
    marketing: Marketing | None = None
    blocked: StrictBool | None = None


class ConsentIn(_Strict):
    email: ChannelConsentIn | None = None
    sms: ChannelConsentIn | None = None
    push: ChannelConsentIn | None = None


def consent_changes(
    consent: ConsentIn | None, topics: dict[str, bool]
) -> tuple[ConsentChange, ...]:
    """The changes a write asks for; what it leaves out stays as it is."""
    changes: list[ConsentChange] = []
    for channel in CHANNELS:
        given: ChannelConsentIn | None = getattr(consent, channel) if consent else None
        if given is None:
            continue
        if given.marketing is not None:
            changes.append(ConsentChange(ConsentKind.MARKETING, channel, given.marketing.value))
        if given.blocked is not None:
            changes.append(ConsentChange(ConsentKind.BLOCK, channel,
                                         BLOCKED if given.blocked else UNBLOCKED))
    changes += [ConsentChange(ConsentKind.TOPIC, topic, SUBSCRIBED if on else UNSUBSCRIBED)
                for topic, on in topics.items()]
    return tuple(changes)


@dataclass(frozen=True)
class ConsentRow:
    kind: str
    name: str
    value: str
    changed_at: datetime
    source: str


def consent_view(rows: list[ConsentRow], topics: tuple[str, ...]) -> dict[str, Any]:
    """``{"consent": {channel: …}, "topics": {topic: …}}`` as the API shows them: every
    channel, and every topic of the schema or with a row, ``unknown`` / unsubscribed
    when nothing was ever recorded."""
    consent: dict[str, dict[str, Any]] = {c: {
        "marketing": Marketing.UNKNOWN.value, "marketingChangedAt": None,
        "marketingSource": None, "blocked": False, "blockedChangedAt": None,
        "blockedSource": None} for c in CHANNELS}
    subscriptions: dict[str, dict[str, Any]] = {
        t: {"subscribed": False, "changedAt": None, "source": None} for t in topics}
    for row in rows:
        if row.kind == ConsentKind.MARKETING and row.name in consent:
            consent[row.name].update(marketing=row.value, marketingChangedAt=row.changed_at,
                                     marketingSource=row.source)
        elif row.kind == ConsentKind.BLOCK and row.name in consent:
            consent[row.name].update(blocked=row.value == BLOCKED,
                                     blockedChangedAt=row.changed_at, blockedSource=row.source)
        elif row.kind == ConsentKind.TOPIC:
            subscriptions[row.name] = {"subscribed": row.value == SUBSCRIBED,
                                       "changedAt": row.changed_at, "source": row.source}
    return {"consent": consent, "topics": subscriptions}


def may_receive(view: dict[str, Any], channel: str, *, transactional: bool) -> bool:
    """The rule the outgoing rules apply: a blocked channel receives nothing; marketing
    needs an opt-in; a transactional message needs no consent."""
    state = view["consent"][channel]
    if state["blocked"]:
        return False
    return transactional or state["marketing"] == Marketing.OPTED_IN.value
