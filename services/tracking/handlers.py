"""What a pixel or a click does, given the one capability it needs: verify the token,
then look its message up and record the reaction, in one statement (no Kafka here: a
reaction is answered once PostgreSQL has it, and the relay produces it later)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.tracking.reaction_rows import hit_of
from shared.adapters.tracking_store import Hit, Recorded
from shared.domain.tracking_links import Keyring, Kind, verify

log = logging.getLogger(__name__)

Record = Callable[[Hit], Awaitable[Recorded]]
Outcome = Literal["recorded", "repeated", "refused", "unknown", "expired", "unavailable"]


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 2× (a request each)
class Request:
    kind: Kind  # the route's: a click token on the pixel's route is refused
    token: str
    method: str
    user_agent: str | None
    now: datetime


@dataclass(slots=True)
class Answer:
    outcome: Outcome
    url: str | None = None  # a click's destination; None for an open, or nothing to answer

    @property
    def found(self) -> bool:
        return self.outcome not in ("refused", "unknown", "expired", "unavailable")


async def react(request: Request, keys: Keyring, record: Record) -> Answer:
    """Refused (404) for a token that does not verify or names another route, unknown
    (404) for a message or link not stored, expired (404) for a message sent longer ago
    than its links are kept (retention; the purge deletes it soon after): nothing
    recorded, nowhere redirected. PostgreSQL away: unavailable (503), as where the link
    goes is not known."""
    tracked = verify(keys, request.token)
    if tracked is None or tracked.kind != request.kind:
        return Answer("refused")
    try:
        done = await record(hit_of(tracked, request.method, request.user_agent, request.now))
    except Exception as error:
        log.warning("a %s could not be recorded (%s)", request.kind, error)
        return Answer("unavailable")
    if done.refused is not None:
        return Answer(done.refused)
    return Answer("recorded" if done.new else "repeated", done.url)
