"""What a pixel or a click does, given the few capabilities it needs: verify the token,
look the message up, classify the request, record the reaction. No Kafka here: a
reaction is answered once PostgreSQL has it, and the relay produces it later."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from services.tracking.reaction_rows import ReactionRow, row_of
from shared.adapters.tracking_store import TrackedMessage
from shared.domain.machine_signals import classify
from shared.domain.reactions import ReactionKind
from shared.domain.retention import expired
from shared.domain.tracking_links import Keyring, Kind, verify

log = logging.getLogger(__name__)

Lookup = Callable[[str, str], Awaitable[TrackedMessage | None]]
Record = Callable[[ReactionRow], Awaitable[bool]]
Outcome = Literal["recorded", "repeated", "refused", "unknown", "expired", "unrecorded",
                  "unavailable"]


@dataclass(frozen=True)
class Request:
    kind: Kind  # the route's: a click token on the pixel's route is refused
    token: str
    method: str
    user_agent: str | None
    now: datetime


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    url: str | None = None  # a click's destination; None for an open, or nothing to answer

    @property
    def found(self) -> bool:
        return self.outcome not in ("refused", "unknown", "expired", "unavailable")


def reaction_of(request: Request, message: TrackedMessage, index: int | None) -> ReactionRow:
    since = (request.now - message.sent_at).total_seconds() if message.sent_at else None
    verdict = classify(request.method, request.user_agent, since)
    kind = ReactionKind.OPENED if index is None else ReactionKind.CLICKED
    return row_of(message, kind, index, request.now, verdict)


async def react(request: Request, keys: Keyring, lookup: Lookup, record: Record,
                keep: timedelta | None = None) -> Answer:
    """Refused (404) for a token that does not verify or names another route, unknown
    (404) for a message or link not stored, expired (404) for a message sent longer ago
    than its links are kept (``keep``, retention; the purge deletes it soon after):
    nothing recorded, nowhere redirected."""
    tracked = verify(keys, request.token)
    if tracked is None or tracked.kind != request.kind:
        return Answer("refused")
    try:
        message = await lookup(tracked.tenant, tracked.message_id)
    except Exception as error:  # PostgreSQL away: where the link goes is not known
        log.warning("a %s could not be looked up (%s)", request.kind, error)
        return Answer("unavailable")
    index = tracked.index
    if message is None or (index is not None and index >= len(message.links)):
        return Answer("unknown")
    if expired(message.sent_at, request.now, keep):
        return Answer("expired")
    url = None if index is None else message.links[index]
    try:
        new = await record(reaction_of(request, message, index))
    except Exception as error:  # the person still gets the image, or where they clicked
        log.warning("a %s could not be recorded (%s)", request.kind, error)
        return Answer("unrecorded", url)
    return Answer("recorded" if new else "repeated", url)
