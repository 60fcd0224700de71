"""Handling records a batch at a time without letting one bad record stop the rest."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

R = TypeVar("R")
log = logging.getLogger(__name__)


async def handle_isolating_poison(
    records: Sequence[R],
    handle_batch: Callable[[Sequence[R]], Awaitable[None]],
    on_poison: Callable[[R, str], Awaitable[None]],
) -> None:
    """Handle the batch; if it fails unexpectedly, handle its records one by one so the
    others still go through and only the culprit reaches ``on_poison`` (R7).
    Expected outages are retried inside ``handle_batch`` and never reach here."""
    try:
        await handle_batch(records)
    except Exception as error:
        if len(records) > 1:
            for record in records:
                await handle_isolating_poison([record], handle_batch, on_poison)
            return
        log.exception("a record failed; sending it to the dead-letter topic")
        await on_poison(records[0], f"error: {type(error).__name__}: {error}")
