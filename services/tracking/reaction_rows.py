"""An open's or a click's reaction as the outbox row it becomes, built without a pydantic
model: the record's JSON is written with orjson in exactly the form ``Reaction``'s
``model_dump_json`` gives (same fields, order and values; tests/unit/test_tracking_rows.py
holds them equal), since a redirect does nothing else as costly. The stored origin is
still validated (``Origin``): a malformed one fails the recording, as before."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import TypeAdapter

from shared.adapters.tracking_store import TrackedMessage
from shared.domain.machine_signals import Verdict
from shared.domain.reactions import _REACTION_NAMESPACE, ReactionKind, trace_reason
from shared.domain.routing import Origin
from shared.domain.uuids import uuid5_text

_ORIGIN: TypeAdapter[Any] = TypeAdapter(Origin)
_CHANNELS = frozenset(("email", "sms", "push"))
_NAMESPACE = _REACTION_NAMESPACE.bytes


def open_or_click_id(tenant: str, message_id: str, kind: ReactionKind, index: int | None,
                     machine: bool) -> str:
    """``reactions.reaction_id`` for an open or a click (the same UUID 5, tests hold them
    equal), without the UUID objects: a quarter of its cost."""
    name = (f"{tenant}/{message_id}/{kind.value}/{'' if index is None else index}/"
            f"{'machine' if machine else 'human'}")
    return uuid5_text(hashlib.sha1(_NAMESPACE + name.encode()).digest())


@dataclass(frozen=True, slots=True)
class ReactionRow:
    """One ``reactions`` row: its columns, the record as JSON text, and its trace row's
    reason."""

    tenant: str
    reaction_id: str
    message_id: str  # a UUID's text, as the tracked message's row gave it
    kind: str
    at: datetime
    profile_id: str | None
    record: str
    reason: str | None  # of its row in the message's trace (reactions.trace_reason)


def row_of(message: TrackedMessage, kind: ReactionKind, index: int | None, at: datetime,
           verdict: Verdict) -> ReactionRow:
    if message.channel not in _CHANNELS:
        raise ValueError(f"unknown channel {message.channel!r}")
    rid = open_or_click_id(message.tenant, message.message_id, kind, index, verdict.machine)
    origin = _ORIGIN.validate_python(message.origin).model_dump(mode="json")
    record = orjson.dumps({
        "v": 1, "reactionId": rid, "tenant": message.tenant, "messageId": message.message_id,
        "kind": kind.value, "at": at, "channel": message.channel,
        "profileId": message.profile_id, "address": message.address, "origin": origin,
        "link": None if index is None else {"index": index, "url": message.links[index]},
        "bounce": None, "machine": verdict.machine, "machineReason": verdict.reason,
        "source": "tracking", "detail": None,
    }, option=orjson.OPT_UTC_Z).decode()
    url = None if index is None else message.links[index]
    return ReactionRow(message.tenant, rid, message.message_id, kind.value, at,
                       message.profile_id, record,
                       trace_reason(index, url, verdict.machine, verdict.reason))
