"""Reactions recorded in PostgreSQL before the answer goes (the outbox, migration 015),
group-committed: one INSERT for the reactions of all the requests arriving while the
previous one ran."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from services.tracking.batching import Batched
from shared.adapters import reaction_store
from shared.domain.reactions import Reaction


def recorder(connection: Callable[[], Awaitable[asyncpg.Connection]]
             ) -> Batched[Reaction, bool]:
    """Each reaction's answer: True when new, False when recorded before (or earlier in
    the same batch)."""

    async def record(reactions: list[Reaction]) -> list[bool]:
        unique = list({r.reactionId: r for r in reactions}.values())
        new = {r.reactionId for r in await reaction_store.record(await connection(), unique)}
        answers = []
        for reaction in reactions:
            answers.append(reaction.reactionId in new)
            new.discard(reaction.reactionId)
        return answers

    return Batched(record)
