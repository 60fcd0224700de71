"""Waiting out an outage: retry an operation with capped exponential backoff.

Used where dropping work is not an option (R6): while PostgreSQL, Kafka or the SMTP
server is down, the stage pauses and tries again instead of losing the record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


async def retry_forever(
    operation: Callable[[], Awaitable[T]],
    what: str,
    transient: tuple[type[BaseException], ...],
    *,
    first_delay_s: float = 0.1,
    max_delay_s: float = 5.0,
    on_retry: Callable[[], None] | None = None,
) -> T:
    delay = first_delay_s
    while True:
        try:
            return await operation()
        except transient as error:
            log.warning("%s failed (%s: %s); retrying in %.1fs", what,
                        type(error).__name__, error, delay)
            if on_retry is not None:
                on_retry()
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)
