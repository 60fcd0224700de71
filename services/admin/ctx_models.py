"""The ctx models of the event configurations the admin API previews, proofs and
describes, in a small cache of the admin's own.

The admin sees a new configuration, or a new version of one, at nearly every call that
needs its model (an author edits, previews, edits again; tests make thousands), and each
model costs about 50 kB, most of it pydantic-core's validator and serializer, outside
Python's heap. In the process-wide ``events.ctx_model`` cache (4,096 entries, sized for the
senders' hot path) they grew the admin by about 200 MB before the first eviction
(P10: admin grows). Here at most ``MAX_MODELS`` are kept, about 3 MB; a model evicted is
rebuilt in about 1.5 ms, and freed (no pydantic registry keeps it).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shared.bounded import BoundedDict
from shared.domain.events import EventConfig, build_ingest_model, typed_ctx
from shared.domain.fields import build_ctx_model

MAX_MODELS = 64

_MODELS: BoundedDict[EventConfig, type[BaseModel]] = BoundedDict(MAX_MODELS)


def ctx_model(config: EventConfig) -> type[BaseModel]:
    """The model of ``config``'s ctx, the same one ingestion checks with (``build_ctx_model``),
    kept in the admin's bounded cache (a configuration is hashable: an edit is a new key)."""
    model = _MODELS.get(config)
    if model is None:
        model = _MODELS[config] = build_ctx_model(
            config.event_id, config.fields, config.collections)
    return model


def admin_typed_ctx(config: EventConfig, ctx: bytes) -> dict[str, Any]:
    """``events.typed_ctx`` with the admin's model: what the preview and the proof show is
    what the sender types."""
    return typed_ctx(config, ctx, ctx_model(config))


def ingest_schema(config: EventConfig) -> dict[str, Any]:
    """The JSON Schema of ``POST /v1/events/{eventId}``'s body, built around the admin's
    model (the request model itself is built each time: the route is rare)."""
    return build_ingest_model(config, ctx_model(config)).model_json_schema()


def cached() -> int:
    """How many models the cache holds (tests)."""
    return len(_MODELS)
