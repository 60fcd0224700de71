"""What a journey message's template sees as ``ctx``: the message configuration's fields
(a JMS… configuration declares them like a transactional event's), each filled from the
data of the waits resolved before the action — a journey event's payload, a reaction's
kind and link — the latest that has it. The sender types them by the fields, as it types
an event's, so a purchase's ``amount`` of 10.50 reads 10.50 in the message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def journey_ctx(fields: list[str], required: set[str], waits: Mapping[str, Mapping[str, Any]]
                ) -> tuple[dict[str, Any], str | None]:
    """A journey message's ``ctx``: each of its fields from the data of the waits resolved
    before it (a journey event's payload, a reaction's kind and link), the latest that has
    it; and the first required field none has (None when all do)."""
    ctx: dict[str, Any] = {}
    for data in waits.values():  # in the order they were resolved
        ctx.update({field: data[field] for field in fields if data.get(field) is not None})
    return ctx, next((f for f in fields if f in required and f not in ctx), None)
