"""Did every accepted event end, exactly once? The verdict of ``parcours reconcile``.

Three witnesses are compared, event by event (pKey):

- what was **accepted**: the records on the input topics (``parcours.events.in.v1``,
  written only after the gateway's 202, and the signed records internal systems produce to
  ``parcours.events.kafka.v1``);
- what the stages **recorded** in PostgreSQL: the event's status, its message in the
  delivery ledger, the schedules that legitimately hold it (a scheduled send, a paused
  message, a delivery rule's deferral, a provider's refusal for now);
- what the **providers** say they were handed, where they can tell (the local sinks count
  every hand-over by message id; a real SMTP relay cannot be asked, so in production the
  ledger's re-claims bound the one window SMTP cannot close).

Each accepted event gets exactly one verdict:

- ``ended``: a terminal status (processed, deliveryFailed, excluded…);
- ``waiting``: not ended, for a reason that is not a fault (accepted less than the grace
  period ago, scheduled for later, its message paused, deferred by a rule, a retry due);
- ``stuck``: not ended after the grace period, and nothing holds it legitimately; with the
  stage it stopped at;
- ``lost``: accepted more than the grace period ago, and no stage ever recorded it.

Apart from the verdicts: ``duplicated`` lists the messages a provider was handed more than
once, each marked inside SMTP's window (its ledger row was claimed again after a crash)
or not; ``unacknowledged`` lists processed messages a sink that keeps them never saw.

Pure: no I/O. The sources are read by ``shared/adapters/reconcile_sources.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from shared.domain.status import TERMINAL

_TERMINAL = frozenset(status.value for status in TERMINAL)

Channel = Literal["email", "sms", "push"]


@dataclass(frozen=True, slots=True)
class Accepted:
    """An event as an input topic holds it (the first record of its pKey in the window)."""

    pkey: str
    tenant: str
    event_id: str
    at: float  # the record's timestamp: when the broker acknowledged it (epoch seconds)
    topic: str


@dataclass(frozen=True, slots=True)
class Recorded:
    """The event's row in ``event_status``."""

    status: str
    message_id: str | None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """The message's row in ``deliveries``."""

    state: str  # sending, waiting, sent, failed
    attempts: int  # claims: more than one means it was handed over again after a crash
    channel: str


@dataclass(frozen=True, slots=True)
class Handed:
    """What the providers that can tell (the local sinks) were handed, by message id."""

    counts: Mapping[str, int]
    # Per channel, the instant since which a sink keeps everything it was handed (a sink
    # keeps a bounded number of messages); absent: no sink of that channel answered.
    since: Mapping[str, float]


@dataclass(frozen=True)
class Sources:
    statuses: Mapping[str, Recorded]  # by pKey
    ledger: Mapping[str, LedgerRow]  # by message id
    # Holds that are not faults, by pKey (scheduled or paused events: their due instant)
    # and by message id (deferred by a rule; a retry after a refusal for now).
    held_events: Mapping[str, float] = field(default_factory=dict)
    deferred: Mapping[str, float] = field(default_factory=dict)
    retries: Mapping[str, float] = field(default_factory=dict)
    handed: Handed | None = None


@dataclass(frozen=True, slots=True)
class Stuck:
    pkey: str
    event_id: str
    accepted_at: float
    status: str
    stage: str  # where it stopped, in words an operator can act on
    tenant: str = ""


@dataclass(frozen=True, slots=True)
class Lost:
    pkey: str
    event_id: str
    accepted_at: float
    topic: str
    tenant: str = ""


@dataclass(frozen=True, slots=True)
class Duplicated:
    message_id: str
    pkey: str
    copies: int
    in_smtp_window: bool  # claimed again after a crash: the documented window
    tenant: str = ""


@dataclass(frozen=True, slots=True)
class Unacknowledged:
    message_id: str
    pkey: str
    channel: str
    tenant: str = ""


class _Staged(Protocol):
    @property
    def stage(self) -> str: ...


S = TypeVar("S", bound=_Staged)  # what is stuck: an event, or a message without a pKey
L = TypeVar("L")  # what is lost


@dataclass
class _Account(Generic[S, L]):
    """What both accounts — events by pKey, messages without one — count alike."""

    ended: Counter[str] = field(default_factory=Counter)  # by terminal status or state
    waiting: Counter[str] = field(default_factory=Counter)  # by why
    stuck: list[S] = field(default_factory=list)
    lost: list[L] = field(default_factory=list)
    duplicated: list[Duplicated] = field(default_factory=list)
    unacknowledged: list[Unacknowledged] = field(default_factory=list)
    # Hand-overs SMTP cannot rule out: sent messages claimed more than once (a crash between
    # the server's acceptance and our commit). An upper bound where no sink can tell.
    resent_after_crash: int = 0

    @property
    def clean(self) -> bool:
        """Nothing lost, stuck, duplicated or unacknowledged: the exit status's 0."""
        return not (self.lost or self.stuck or self.duplicated or self.unacknowledged)

    def _counts(self) -> dict[str, int]:
        return {
            "ended": sum(self.ended.values()),
            "waiting": sum(self.waiting.values()), "stuck": len(self.stuck),
            "lost": len(self.lost), "duplicated": len(self.duplicated),
            "duplicatedInSmtpWindow": sum(d.in_smtp_window for d in self.duplicated),
            "unacknowledged": len(self.unacknowledged),
            "resentAfterCrash": self.resent_after_crash,
        }

    def _json(self, counts: dict[str, int]) -> dict[str, Any]:
        return {
            "counts": counts,
            "ended": dict(sorted(self.ended.items())),
            "waiting": dict(sorted(self.waiting.items())),
            "stuckByStage": dict(Counter(s.stage for s in self.stuck).most_common()),
        }

    def _table(self, first: str, indent: str) -> list[str]:
        """The counts for a terminal, then what is stuck by stage; ``first``: the total's
        line, ``indent``: the rest's (the messages' account sits under the events')."""
        counts = self._counts()
        lines = [first]
        for state, n in sorted(self.ended.items()):
            lines.append(f"  ended {state:<20}{n:>12,}")
        for why, n in sorted(self.waiting.items()):
            lines.append(f"  waiting: {why:<17}{n:>12,}")
        for key in ("stuck", "lost", "duplicated", "unacknowledged"):
            lines.append(f"{indent}{key:<{28 - len(indent)}}{counts[key]:>12,}")
        lines.append(f"{indent + '  of which in SMTP window':<28}"
                     f"{counts['duplicatedInSmtpWindow']:>12,}")
        lines.append(f"{indent + 'resent after a crash':<28}{counts['resentAfterCrash']:>12,}")
        for stage, n in Counter(s.stage for s in self.stuck).most_common():
            lines.append(f"{indent}stuck at {stage}: {n:,}")
        return lines


@dataclass
class Report(_Account[Stuck, Lost]):
    accepted: int = 0

    def counts(self) -> dict[str, int]:
        return {"accepted": self.accepted, **self._counts()}

    def as_json(self, limit: int = 100) -> dict[str, Any]:
        """Counts, and up to ``limit`` of each kind of finding (the first, by acceptance)."""
        return {
            **self._json(self.counts()),
            "stuck": [_stuck_json(s) for s in self.stuck[:limit]],
            "lost": [_lost_json(lost) for lost in self.lost[:limit]],
            "duplicated": [{"messageId": d.message_id, "pKey": d.pkey, "copies": d.copies,
                            "inSmtpWindow": d.in_smtp_window, "tenant": d.tenant}
                           for d in self.duplicated[:limit]],
            "unacknowledged": [{"messageId": u.message_id, "pKey": u.pkey,
                                "channel": u.channel, "tenant": u.tenant}
                               for u in self.unacknowledged[:limit]],
        }


def _stuck_json(stuck: Stuck) -> dict[str, Any]:
    return {"pKey": stuck.pkey, "eventId": stuck.event_id, "acceptedAt": stuck.accepted_at,
            "status": stuck.status, "stage": stuck.stage, "tenant": stuck.tenant}


def _lost_json(lost: Lost) -> dict[str, Any]:
    return {"pKey": lost.pkey, "eventId": lost.event_id, "acceptedAt": lost.accepted_at,
            "topic": lost.topic, "tenant": lost.tenant}


def _where_stuck(recorded: Recorded, sources: Sources, pkey: str, now: float,
                 grace_s: float) -> tuple[bool, str]:
    """(waiting, why) for an event past its grace period without a terminal status."""
    due = sources.held_events.get(pkey)
    if due is not None:  # scheduled, or its message paused (due at once, released on resume)
        if recorded.status == "paused":
            return True, "paused"
        if due > now - grace_s:
            return True, "scheduled"
        return False, "processor: a scheduled send past its time, not released"
    if recorded.status == "paused":
        return False, "processor: paused, but not held"
    message_id = recorded.message_id
    if recorded.status == "pending" or message_id is None:
        return False, "processor: recorded, never routed"
    deferred = sources.deferred.get(message_id)
    if deferred is not None:
        if deferred > now - grace_s:
            return True, "deferred by a rule"
        return False, "processor: deferred by a rule, past its time"
    retry = sources.retries.get(message_id)
    if retry is not None:
        if retry > now - grace_s:
            return True, "retry due"
        return False, "sender: retry overdue"
    row = sources.ledger.get(message_id)
    if row is None:
        return False, "sender: routed, never claimed"
    if row.state == "sending":
        return False, "sender: claimed, never settled"
    if row.state == "waiting":
        return False, "sender: waiting for a retry that is not scheduled"
    return False, f"status store: ledger {row.state}, status not terminal"


def reconcile(accepted: Iterable[Accepted], sources: Sources, now: float,
              grace_s: float) -> Report:
    """The verdict on every accepted event; ``accepted`` holds each pKey once."""
    report = Report()
    handed = sources.handed
    for event in accepted:
        report.accepted += 1
        recorded = sources.statuses.get(event.pkey)
        young = event.at > now - grace_s
        if recorded is None:
            if young:
                report.waiting["in flight"] += 1
            else:
                report.lost.append(Lost(event.pkey, event.event_id, event.at, event.topic,
                                        event.tenant))
            continue
        if recorded.status in _TERMINAL:
            report.ended[recorded.status] += 1
        elif young:
            report.waiting["in flight"] += 1
        else:
            waiting, why = _where_stuck(recorded, sources, event.pkey, now, grace_s)
            if waiting:
                report.waiting[why] += 1
            else:
                report.stuck.append(
                    Stuck(event.pkey, event.event_id, event.at, recorded.status, why,
                          event.tenant))
        message_id = recorded.message_id
        row = sources.ledger.get(message_id) if message_id else None
        if message_id is None or row is None:
            continue
        resent = row.attempts > 1 and row.state == "sent"
        report.resent_after_crash += resent
        if handed is None:
            continue
        copies = handed.counts.get(message_id, 0)
        if copies > 1:
            report.duplicated.append(Duplicated(
                message_id, event.pkey, copies, resent and row.channel == "email",
                event.tenant))
        elif (copies == 0 and recorded.status == "processed" and row.state == "sent"
              and row.channel in handed.since and event.at >= handed.since[row.channel]):
            report.unacknowledged.append(Unacknowledged(message_id, event.pkey, row.channel,
                                                             event.tenant))
    return report


def table(report: Report) -> str:
    """The report for a terminal: the counts, then what is wrong, by kind."""
    return "\n".join(report._table(f"{'accepted':<28}{report.accepted:>12,}", ""))


# What the providers themselves reported (reactions from DSN bounces and signed provider
# webhooks): the witness left in production, where no relay can be asked what it accepted
# (README, Proof of delivery). Counted beside the verdicts, not as findings: a receipt may
# lawfully come minutes late, and email has no delivery receipt at all.
RECEIPTS = {  # channel -> the reaction kinds that answer for a message handed over
    "email": ("delivered", "bounced", "complained"),
    "sms": ("smsDelivered", "failed"),
}
EXPECTS_RECEIPT = frozenset({"sms"})  # SMS providers report every message; mail servers not


def provider_receipts(ledger: Mapping[str, LedgerRow],
                      kinds: Mapping[str, frozenset[str]]) -> dict[str, dict[str, int]]:
    """Per channel: messages handed over (``sent`` in the ledger), how many each receipt
    kind answered, and — where the provider reports every message — how many have none
    yet (``noReceipt``). ``kinds``: the reaction kinds recorded per message id."""
    out: dict[str, dict[str, int]] = {}
    for message_id, row in ledger.items():
        if row.state != "sent":
            continue
        counts = out.setdefault(row.channel, {"sent": 0})
        counts["sent"] += 1
        got = kinds.get(message_id, frozenset()) & frozenset(RECEIPTS.get(row.channel, ()))
        for kind in got:
            counts[kind] = counts.get(kind, 0) + 1
        if row.channel in EXPECTS_RECEIPT and not got:
            counts["noReceipt"] = counts.get("noReceipt", 0) + 1
    order = {k: i for i, k in enumerate(("sent", *(k for ks in RECEIPTS.values() for k in ks),
                                         "noReceipt"))}
    return {channel: dict(sorted(counts.items(), key=lambda kv: order[kv[0]]))
            for channel, counts in sorted(out.items())}


def receipts_table(receipts: Mapping[str, Mapping[str, int]]) -> list[str]:
    return [f"provider receipts ({channel}): " + ", ".join(
        f"{kind} {n:,}" for kind, n in counts.items()) for channel, counts in receipts.items()]


# Messages without a pKey: a journey's (decided by the engine: its ``actionSent`` step) and
# any other record on a bulk send topic that answers no event. Their account goes by
# message id, from the engine's decision (or the topic) to the ledger and the sinks.


@dataclass(frozen=True, slots=True)
class Decided:
    """A message without a pKey as first seen: the engine's ``actionSent`` step (``origin``
    ``journey JNY… v2 node``), or its record on a bulk send topic (``topic``)."""

    message_id: str
    tenant: str
    origin: str  # the journey, its version and node; or the topic it was read from
    at: float  # when the engine decided it, or the broker acknowledged it
    source: Literal["engine", "topic"]


@dataclass(frozen=True)
class MessageSources:
    ledger: Mapping[str, LedgerRow]  # by message id
    on_topic: frozenset[str] = frozenset()  # ids seen on a bulk send topic in the window
    outbox: Mapping[str, float] = field(default_factory=dict)  # not applied yet: since
    excluded: Mapping[str, str] = field(default_factory=dict)  # an exclusion step or trace
    deferred: Mapping[str, float] = field(default_factory=dict)  # held by a rule: due
    retries: Mapping[str, float] = field(default_factory=dict)  # refused for now: due
    handed: Handed | None = None


@dataclass(frozen=True, slots=True)
class StuckMessage:
    message_id: str
    tenant: str
    origin: str
    decided_at: float
    stage: str


@dataclass(frozen=True, slots=True)
class LostMessage:
    message_id: str
    tenant: str
    origin: str
    decided_at: float


@dataclass
class MessageReport(_Account[StuckMessage, LostMessage]):
    decided: int = 0

    def counts(self) -> dict[str, int]:
        return {"decided": self.decided, **self._counts()}

    def as_json(self, limit: int = 100) -> dict[str, Any]:
        return {
            **self._json(self.counts()),
            "stuck": [{"messageId": s.message_id, "tenant": s.tenant, "origin": s.origin,
                       "decidedAt": s.decided_at, "stage": s.stage}
                      for s in self.stuck[:limit]],
            "lost": [{"messageId": x.message_id, "tenant": x.tenant, "origin": x.origin,
                      "decidedAt": x.decided_at} for x in self.lost[:limit]],
            "duplicated": [{"messageId": d.message_id, "copies": d.copies,
                            "inSmtpWindow": d.in_smtp_window, "tenant": d.tenant}
                           for d in self.duplicated[:limit]],
            "unacknowledged": [{"messageId": u.message_id, "channel": u.channel,
                                "tenant": u.tenant} for u in self.unacknowledged[:limit]],
        }


def _message_waits(message: Decided, sources: MessageSources, now: float,
                   grace_s: float) -> tuple[bool, str]:
    """(waiting, why) for a message past its grace period, neither settled nor excluded."""
    message_id = message.message_id
    deferred = sources.deferred.get(message_id)
    if deferred is not None:
        if deferred > now - grace_s:
            return True, "deferred by a rule"
        return False, "processor: deferred by a rule, past its time"
    retry = sources.retries.get(message_id)
    if retry is not None:
        if retry > now - grace_s:
            return True, "retry due"
        return False, "sender: retry overdue"
    row = sources.ledger.get(message_id)
    if row is not None:
        if row.state == "sending":
            return False, "sender: claimed, never settled"
        return False, f"sender: ledger {row.state}, not settled"
    if message_id in sources.outbox:
        return False, "journeys: decided, its outbox entry not applied"
    if message_id in sources.on_topic:
        return False, "sender: produced, never claimed"
    return False, ""  # no stage after the engine's decision recorded it: lost


def reconcile_messages(decided: Iterable[Decided], sources: MessageSources, now: float,
                       grace_s: float) -> MessageReport:
    """The verdict on every message without a pKey; ``decided`` holds each id once.

    ``ended``: its ledger row settled (``sent``, ``failed``) or it was excluded (by the
    engine, the rules' step or a control rule); ``waiting``: younger than the grace period,
    deferred by a rule or a retry due; ``stuck``: with the stage it stopped at; ``lost``:
    decided by the engine past the grace period and no later stage (outbox, topic, rules,
    ledger) has it. Duplicates and unacknowledged messages as for events."""
    report = MessageReport()
    handed = sources.handed
    for message in decided:
        report.decided += 1
        message_id = message.message_id
        row = sources.ledger.get(message_id)
        if row is not None and row.state in ("sent", "failed"):
            report.ended[row.state] += 1
        elif message_id in sources.excluded:
            report.ended["excluded"] += 1
        elif message.at > now - grace_s:
            report.waiting["in flight"] += 1
        else:
            waiting, why = _message_waits(message, sources, now, grace_s)
            if waiting:
                report.waiting[why] += 1
            elif why:
                report.stuck.append(StuckMessage(message_id, message.tenant, message.origin,
                                                 message.at, why))
            else:
                report.lost.append(LostMessage(message_id, message.tenant, message.origin,
                                               message.at))
        if row is None:
            continue
        resent = row.attempts > 1 and row.state == "sent"
        report.resent_after_crash += resent
        if handed is None:
            continue
        copies = handed.counts.get(message_id, 0)
        if copies > 1:
            report.duplicated.append(Duplicated(
                message_id, "", copies, resent and row.channel == "email", message.tenant))
        elif (copies == 0 and row.state == "sent" and row.channel in handed.since
              and message.at >= handed.since[row.channel]):
            report.unacknowledged.append(
                Unacknowledged(message_id, "", row.channel, message.tenant))
    return report


def message_table(report: MessageReport) -> str:
    """The account of messages without a pKey, for a terminal."""
    return "\n".join(report._table(
        f"{'messages without a pKey':<28}{report.decided:>12,}", "  "))
