"""The deduplication ledger that makes sending idempotent across redeliveries and crashes.

Before handing a message to a provider the sender claims its row; after the provider
accepted it, the row becomes ``sent`` in the same transaction as the event's status.
A redelivered record whose row is ``sent`` or ``failed`` is skipped. A row left at
``sending`` means a crash between the provider's answer and our commit: the message is
sent again with the same Message-ID, the one window at-least-once cannot close with SMTP.
"""

from __future__ import annotations

from enum import StrEnum

import asyncpg

from shared.adapters.status_store import StatusWrite, record_statuses


class Claim(StrEnum):
    NEW = "new"
    DONE = "done"  # already sent or failed for good: skip
    RESUMED = "resumed"  # a crash left it mid-send: send again


async def claim(
    connection: asyncpg.Connection, message_id: str, tenant: str, pkey: str, channel: str
) -> Claim:
    row = await connection.fetchrow(
        "INSERT INTO deliveries (message_id, tenant_id, pkey, channel, state)"
        " VALUES ($1, $2, $3, $4, 'sending')"
        " ON CONFLICT (message_id) DO UPDATE SET attempts = deliveries.attempts + 1,"
        " updated_at = now() WHERE deliveries.state = 'sending'"
        " RETURNING attempts",
        message_id, tenant, pkey, channel,
    )
    if row is None:
        return Claim.DONE
    return Claim.NEW if row["attempts"] == 1 else Claim.RESUMED


async def settle(
    connection: asyncpg.Connection, message_id: str, sent: bool, detail: str | None,
    status: StatusWrite,
) -> None:
    async with connection.transaction():
        await connection.execute(
            "UPDATE deliveries SET state = $2, detail = $3, updated_at = now()"
            " WHERE message_id = $1",
            message_id, "sent" if sent else "failed", detail,
        )
        await record_statuses(connection, [status])
