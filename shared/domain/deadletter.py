"""Dead letters: a record no stage could handle, kept whole with the stage and the reason,
and what may be replayed of them (``parcours deadletters``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.domain.record_signing import KEY_ID_HEADER
from shared.topics import (
    EVENTS_IN,
    EVENTS_KAFKA,
    JOURNEY_EVENTS,
    JOURNEY_EVENTS_KAFKA,
    PROFILES,
    REACTIONS,
    SEND_BULK_TOPICS,
    SEND_TX_TOPICS,
)

_NAMED_ERRORS = 5  # enough to fix a record; a reason is also a status's reason, kept short
# On a replayed record: the dead letter it came from, "<partition>:<offset>", so a stage
# or a later count can tell a replay from a first delivery.
REPLAYED_FROM_HEADER = "parcours-replayed-from"


class DeadLetter(BaseModel):
    """The record on ``parcours.deadletter.v1``; ``original`` can be replayed as is, to
    ``topic`` with ``headers`` (a signed record's signature) and ``timestamp``."""

    model_config = ConfigDict(extra="forbid")

    v: int = 1
    stage: str
    reason: str
    original: str
    at: float
    # Since 2026-12-04 (additive: absent from older letters).
    topic: str | None = Field(None, description="The topic the original was read from.")
    headers: list[tuple[str, str]] | None = Field(
        None, description="The original's headers, [name, value as UTF-8 text] each (a "
                          "signed record's parcours-key-id and parcours-signature).")
    timestamp: float | None = Field(
        None, description="The original's Kafka timestamp, in seconds since the epoch.")


def is_replay(headers: Sequence[tuple[str, bytes]]) -> bool:
    """Whether a record was produced again from a dead letter (``parcours deadletters
    replay``)."""
    return any(name == REPLAYED_FROM_HEADER for name, _ in headers)


@dataclass(frozen=True)
class Source:
    """Where a dead-lettered record was read, and how it was written."""

    topic: str
    headers: Sequence[tuple[str, bytes]] = ()
    timestamp: float | None = None


def dead_letter(stage: str, reason: str, raw: bytes, at: float,
                source: Source | None = None) -> DeadLetter:
    kept = {} if source is None else {
        "topic": source.topic, "timestamp": source.timestamp,
        "headers": [(name, (value or b"").decode(errors="replace"))
                    for name, value in source.headers]}
    return DeadLetter(stage=stage, reason=reason, original=raw.decode(errors="replace"), at=at,
                      **kept)


def invalid_reason(error: ValidationError) -> str:
    """``invalid: ctx.price: Input should be a valid decimal; email: Field required``."""
    errors = error.errors(include_url=False, include_input=False, include_context=False)
    named = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
             for e in errors[:_NAMED_ERRORS]]
    more = len(errors) - _NAMED_ERRORS
    return "invalid: " + "; ".join(named) + (f"; and {more} more" if more > 0 else "")


# Each stage's input topics. Only a signed topic is replayable: its reader checks every
# record's signature (parcours-key-id, parcours-signature) again, so a replay cannot act
# for a tenant whose key did not sign it, whoever wrote the dead letter. The others are
# written by Parcours itself and trusted by their reader (the gateway's validated events,
# send records, reactions): a record replayed there from a dead letter could be a forgery.
STAGE_INPUTS: dict[str, tuple[str, ...]] = {
    "processor": (EVENTS_KAFKA.name, EVENTS_IN.name),
    "profile-ingest": (PROFILES.name,),
    "journeys": (JOURNEY_EVENTS_KAFKA.name, JOURNEY_EVENTS.name, REACTIONS.name),
    "reactions": (REACTIONS.name,),
    **{f"sender-{channel}": (topic.name,) for channel, topic in SEND_TX_TOPICS.items()},
    **{f"sender-{channel}-bulk": (topic.name,) for channel, topic in SEND_BULK_TOPICS.items()},
}
SIGNED_TOPICS = frozenset({EVENTS_KAFKA.name, PROFILES.name, JOURNEY_EVENTS_KAFKA.name})


@dataclass(frozen=True)
class Replay:
    """A record to produce again, exactly as it was but for the replay header."""

    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone (parcours.profiles.v1)
    headers: list[tuple[str, bytes]]
    timestamp_ms: int | None


@dataclass(frozen=True)
class Skip:
    why: str


def plan_replay(letter: DeadLetter, key: bytes | None, letter_id: str) -> Replay | Skip:
    """What replaying the dead letter ``letter_id`` (``partition:offset``), keyed ``key``,
    produces, or why it is not replayed. Nothing is ever signed here: the original's
    headers go back as they were, so a record only passes if its producer signed it."""
    inputs = STAGE_INPUTS.get(letter.stage)
    if inputs is None:
        return Skip(f"unknown stage {letter.stage!r}")
    topic = letter.topic or (inputs[0] if len(inputs) == 1 else None)
    if topic is None:
        return Skip(f"no source topic kept (written before 2026-12-04), and stage"
                    f" {letter.stage} reads {len(inputs)} topics")
    if topic not in inputs:
        return Skip(f"{topic} is not an input of stage {letter.stage}")
    if topic not in SIGNED_TOPICS:
        return Skip(f"{topic} is not signed: it is written by Parcours and trusted by its"
                    " reader, so no record goes back to it from a dead letter")
    if letter.headers is None or KEY_ID_HEADER not in {name for name, _ in letter.headers}:
        return Skip("no signature kept: the producer must sign it again and produce it")
    if "\ufffd" in letter.original or any("\ufffd" in v for _, v in letter.headers):
        return Skip("the original was not UTF-8 (kept with U+FFFD): not replayable as it was")
    headers = [(name, value.encode()) for name, value in letter.headers
               if name != REPLAYED_FROM_HEADER]
    headers.append((REPLAYED_FROM_HEADER, letter_id.encode()))
    tombstone = topic == PROFILES.name and letter.original == ""
    return Replay(topic, key, None if tombstone else letter.original.encode(), headers,
                  None if letter.timestamp is None else round(letter.timestamp * 1000))


@dataclass(frozen=True)
class Filter:
    """Which dead letters a command selects; times in seconds since the epoch."""

    since: float
    until: float
    stage: str | None = None
    reason: str | None = None  # a part of the reason, any case
    key: str | None = None  # a part of the original's key

    def selects(self, letter: DeadLetter, key: bytes | None) -> bool:
        return (self.since <= letter.at <= self.until
                and (self.stage is None or letter.stage == self.stage)
                and (self.reason is None or self.reason.lower() in letter.reason.lower())
                and (self.key is None
                     or (key is not None and self.key in key.decode(errors="replace"))))


def parse_id(text: str) -> tuple[int, int]:
    """``2:1234`` → (partition 2, offset 1234)."""
    partition, sep, offset = text.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"{text!r}: a dead letter's id is <partition>:<offset>, as listed")
    return int(partition), int(offset)


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
