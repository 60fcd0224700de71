"""The admin's ctx models stay bounded (P10: admin grows): each event configuration's
model costs about 50 kB, and the admin sees a new configuration at nearly every preview.
Pure: no I/O, the admin's cache and the decimal reader only."""

from __future__ import annotations

import gc
import weakref

from services.admin import ctx_models
from shared.domain import events
from shared.domain.events import EventConfig, typed_ctx


def config(n: int) -> EventConfig:
    return EventConfig.model_validate({
        "event_id": f"EVTbounded{n}", "label": "bounded", "channel": "email",
        "targeting": "event",
        "fields": [{"id": "price", "type": "decimal"}],
        "collections": [{"id": "items", "fields": [{"id": "price", "type": "decimal"}]}],
    })


def test_previewing_many_configurations_keeps_the_admins_models_bounded() -> None:
    shared_before = events._ctx_model.cache_info().currsize, len(events._recent)
    first = ctx_models.ctx_model(config(0))
    gone = weakref.ref(first)
    del first
    for n in range(ctx_models.MAX_MODELS + 40):
        typed = ctx_models.admin_typed_ctx(
            config(n), b'{"price": 19.90, "items": [{"price": 1.10}]}')
        assert str(typed["price"]) == "19.90" and str(typed["items"][0]["price"]) == "1.10"
        assert ctx_models.ingest_schema(config(n))["properties"]["ctx"]
    assert ctx_models.cached() == ctx_models.MAX_MODELS
    # the process-wide cache (sized for the senders) got none of them
    assert (events._ctx_model.cache_info().currsize, len(events._recent)) == shared_before
    # an evicted model is freed: nothing else keeps it (the decimal reader's plan did)
    gc.collect()
    assert gone() is None


def test_the_admins_model_types_ctx_as_the_senders() -> None:
    text = b'{"price": 12345678901234567890.123456789, "items": [{"price": 1e-3}]}'

    assert ctx_models.admin_typed_ctx(config(1), text) == typed_ctx(config(1), text)


def test_the_shared_ctx_models_are_found_by_identity_and_stay_bounded() -> None:
    """The sender asks for the same configuration object message after message: found
    without hashing it; an equal configuration built anew gets the same model."""
    first = config(10_000)
    model = events.ctx_model(first)
    assert events.ctx_model(first) is model
    assert events.ctx_model(config(10_000)) is model  # equal, not the same object
    for n in range(events._RECENT_MAX * 2):
        events.ctx_model(config(20_000 + n))
    assert len(events._recent) <= events._RECENT_MAX
