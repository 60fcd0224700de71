"""An open or a click as the statement that records it takes it (``tracking_store.Hit``):
the request's side of its reaction, for both verdicts the message's sending time may
give — a person's, and a scanner's when it came within ``SCANNER_WINDOW_S`` of the
sending. The statement reads the message and picks one; the record it stores is the
``Reaction`` these make with the message's columns (tests/integration/
test_tracking_hits.py holds the two equal)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from shared.adapters.tracking_store import Hit
from shared.domain.machine_signals import SCANNER_WINDOW_S, Verdict, classify
from shared.domain.reactions import _REACTION_NAMESPACE, ReactionKind, trace_reason
from shared.domain.tracking_links import Tracked
from shared.domain.uuids import uuid5_text

_NAMESPACE = _REACTION_NAMESPACE.bytes
# A hit this soon after its message's sending is a scanner's (machine_signals.classify).
SCANNER_WINDOW = timedelta(seconds=SCANNER_WINDOW_S)

Side = tuple[str, bool, str | None, str | None]


def open_or_click_id(tenant: str, message_id: str, kind: ReactionKind, index: int | None,
                     machine: bool) -> str:
    """``reactions.reaction_id`` for an open or a click (the same UUID 5, tests hold them
    equal), without the UUID objects: a quarter of its cost."""
    name = (f"{tenant}/{message_id}/{kind.value}/{'' if index is None else index}/"
            f"{'machine' if machine else 'human'}")
    return uuid5_text(hashlib.sha1(_NAMESPACE + name.encode()).digest())


def _side(tracked: Tracked, kind: ReactionKind, verdict: Verdict) -> Side:
    return (open_or_click_id(tracked.tenant, tracked.message_id, kind, tracked.index,
                             verdict.machine),
            verdict.machine, verdict.reason,
            trace_reason(None, None, verdict.machine, verdict.reason))


def hit_of(tracked: Tracked, method: str, user_agent: str | None, at: datetime) -> Hit:
    kind = ReactionKind.OPENED if tracked.index is None else ReactionKind.CLICKED
    late = classify(method, user_agent, None)  # the sending long enough ago
    early = classify(method, user_agent, 0.0)  # within the scanner window
    late_side = _side(tracked, kind, late)
    return Hit(tracked.tenant, tracked.message_id, kind.value, tracked.index, at, *late_side,
               *(late_side if early == late else _side(tracked, kind, early)))
