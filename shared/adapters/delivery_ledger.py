"""The deduplication ledger that makes sending idempotent across redeliveries and crashes.

Before handing messages to a provider the sender claims their rows; once the provider
answered, the rows become ``sent`` or ``failed`` in the same transaction as the events'
statuses. A redelivered message whose row is ``sent`` or ``failed`` is not claimed again.
A row left at ``sending`` means a crash between the provider's answer and our commit:
the message is claimed and sent again. Over SMTP it carries the same Message-ID, the one
window at-least-once cannot close there; over HTTP it carries the same Idempotency-Key,
and the provider answers it without delivering it twice. Both steps take one round trip
per batch; the ledger keeps the failure's reason or the provider's id for the message.
The settle's one statement also moves the events' statuses and the messages' contact
history and trace (``message_outcomes``); a batch with refusals that blame an address
moves their quarantine rows too (``quarantine_store``), in the same transaction.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from shared.adapters import message_outcomes, quarantine_store, status_store
from shared.adapters.message_outcomes import MessageOutcome
from shared.adapters.quarantine_store import AddressFailure
from shared.domain.status import StatusWrite

# The ledger is partitioned by week of accepted_day (migration 040) and its unique key is
# (message_id, accepted_day): every claim of a message names the same day, the day its
# timed pKey was issued, else (a journey's message, a pKey without a time) the day of the
# row that already holds the message, else today's (its first claim). A redelivered
# send record so meets its row and is not claimed again.
_CLAIM = """
INSERT INTO deliveries (message_id, tenant_id, pkey, channel, state, accepted_day)
SELECT m, t, p, $4, 'sending',
       COALESCE(pkey_day(p), (SELECT x.accepted_day FROM deliveries x
                               WHERE x.message_id = m LIMIT 1),
                (now() AT TIME ZONE 'UTC')::date)
  FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(m, t, p)
ON CONFLICT (message_id, accepted_day)
   DO UPDATE SET attempts = deliveries.attempts + 1, updated_at = now()
 WHERE deliveries.state = 'sending'
RETURNING message_id
"""

# The ledger, the events' statuses, the messages' contact history and trace: one statement
# (its parts are atomic together, without a transaction of their own).
_LEDGER = """
WITH ledger AS (
    UPDATE deliveries AS d SET state = u.state, detail = u.detail, updated_at = now()
      FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(message_id, state, detail)
     WHERE d.message_id = u.message_id
), statuses AS ("""
_CTES, _TRACE = message_outcomes.statement_parts(11)
_SETTLE = _LEDGER + status_store.upsert_many(4) + ")," + _CTES + _TRACE


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
    """One statement (one round trip, no BEGIN and COMMIT of its own); a batch with
    refusals that blame an address also moves their quarantine rows, in a transaction."""
    if not outcomes:
        return
    failures = [o.address_failure for o in outcomes if o.address_failure]
    async with connection.transaction() if failures else contextlib.nullcontext():
        await connection.execute(
            _SETTLE,
            [uuid.UUID(o.message_id) for o in outcomes],
            ["sent" if o.sent else "failed" for o in outcomes],
            [o.detail for o in outcomes],
            *status_store.upsert_columns([o.status for o in outcomes if o.status]),
            *message_outcomes.columns([o.trace for o in outcomes if o.trace]),
        )
        await quarantine_store.record_failures(connection, failures, datetime.now(UTC))
