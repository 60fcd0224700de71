"""Reactions recorded in PostgreSQL before the answer goes (the outbox, migration 015),
group-committed: one INSERT for the reactions of all the requests arriving while the
previous one ran."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from services.tracking.batching import Batched
from services.tracking.reaction_rows import ReactionRow
from shared.adapters.reaction_store import _RECORD as INSERT_ROWS  # the same statement


def recorder(connection: Callable[[], Awaitable[asyncpg.Connection]]
             ) -> Batched[ReactionRow, bool]:
    """Each reaction's answer: True when new, False when recorded before (or earlier in
    the same batch). The rows as reaction_store.record writes them, from rows already
    made (no model to dump)."""

    async def record(rows: list[ReactionRow]) -> list[bool]:
        unique = list({r.reaction_id: r for r in rows}.values())
        stored = await (await connection()).fetch(
            INSERT_ROWS, [r.tenant for r in unique], [r.reaction_id for r in unique],
            [r.message_id for r in unique], [r.kind for r in unique],
            [r.at for r in unique], [r.profile_id for r in unique],
            [r.record for r in unique], [r.reason for r in unique])
        new = {str(row["reaction_id"]) for row in stored}
        answers = []
        for row in rows:
            answers.append(row.reaction_id in new)
            new.discard(row.reaction_id)
        return answers

    return Batched(record)
