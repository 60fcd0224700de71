"""The deduplication ledger that makes sending idempotent across redeliveries and crashes.

Before handing messages to a provider the sender claims their rows; once the provider
answered, the rows become ``sent`` or ``failed`` in the same transaction as the events'
statuses. A redelivered message whose row is ``sent`` or ``failed`` is not claimed again.
A row left at ``sending`` means a crash between the provider's answer and our commit:
the message is claimed and sent again. Over SMTP it carries the same Message-ID, the one
window at-least-once cannot close there; over HTTP it carries the same Idempotency-Key,
and the provider answers it without delivering it twice. Both steps take one round trip
per batch; the ledger keeps the failure's reason or the provider's id for the message.
The settle's transaction also moves the messages' contact history and trace
(``message_outcomes``: one more statement) and, for a batch with refusals that blame an
address, its quarantine row (``quarantine_store``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from shared.adapters import message_outcomes, quarantine_store
from shared.adapters.message_outcomes import MessageOutcome
from shared.adapters.quarantine_store import AddressFailure
from shared.adapters.status_store import record_statuses
from shared.domain.status import StatusWrite

_CLAIM = """
INSERT INTO deliveries (message_id, tenant_id, pkey, channel, state)
SELECT m, t, p, $4, 'sending' FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(m, t, p)
ON CONFLICT (message_id) DO UPDATE SET attempts = deliveries.attempts + 1, updated_at = now()
 WHERE deliveries.state = 'sending'
RETURNING message_id
"""

_SETTLE = """
UPDATE deliveries AS d SET state = u.state, detail = u.detail, updated_at = now()
  FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(message_id, state, detail)
 WHERE d.message_id = u.message_id
"""


@dataclass(frozen=True)
class Claimable:
    message_id: str
    tenant: str
    pkey: str | None  # None for a journey's message


async def claim(
    connection: asyncpg.Connection, channel: str, messages: list[Claimable]
) -> set[str]:
    """Claim the messages not yet settled; returns the ids the caller may send.
    ``messages`` must not repeat an id (one statement cannot touch a row twice)."""
    if not messages:
        return set()
    rows = await connection.fetch(
        _CLAIM,
        [uuid.UUID(m.message_id) for m in messages],
        [m.tenant for m in messages],
        [m.pkey for m in messages],
        channel,
    )
    return {str(row["message_id"]) for row in rows}


@dataclass(frozen=True)
class Outcome:
    message_id: str
    sent: bool
    detail: str | None
    status: StatusWrite | None  # of the event it answers; None for a journey's message
    # Its contact history outcome and trace row (message_outcomes), and what the refusal
    # says about the address (quarantine_store), written in the same transaction.
    trace: MessageOutcome | None = None
    address_failure: AddressFailure | None = None


async def settle(connection: asyncpg.Connection, outcomes: list[Outcome]) -> None:
    if not outcomes:
        return
    async with connection.transaction():
        await connection.execute(
            _SETTLE,
            [uuid.UUID(o.message_id) for o in outcomes],
            ["sent" if o.sent else "failed" for o in outcomes],
            [o.detail for o in outcomes],
        )
        await record_statuses(connection, [o.status for o in outcomes if o.status])
        await message_outcomes.record(connection, [o.trace for o in outcomes if o.trace])
        await quarantine_store.record_failures(
            connection, [o.address_failure for o in outcomes if o.address_failure],
            datetime.now(UTC))
