"""The engine's background loops: each runs a step over and over, at once again while the
step had a full batch, else after its idle time; anything unexpected is logged and the
loop goes on a second later (outages are waited out inside the steps)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)
# Set when the engine itself wrote a profile (updateProfile): the goal sweep
# (``goal_sweep``) runs at once rather than at its next period.
PROFILE_WRITTEN = asyncio.Event()


async def repeat(what: str, step: Callable[[], Awaitable[bool]], idle_s: float) -> None:
    """``step`` answers whether it has more to do at once. Until cancelled."""
    while True:
        try:
            busy = await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; trying again", what)
            await asyncio.sleep(1.0)
            continue
        if not busy:
            await asyncio.sleep(idle_s)
