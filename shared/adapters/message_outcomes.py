"""What the senders add to a message's story when it settles: its contact history row's
outcome (``delivered``, ``failed``, or ``excluded`` by a control rule) and one row of its
trace. One statement per settle batch, in the settle's transaction.

Contact history rows exist only for the messages the processor's decision step recorded;
the UPDATE finds none for the others, and that is fine. The trace row is written either
way: it is the message's own record of what the sender did.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

import asyncpg

Settled = Literal["delivered", "failed", "excluded"]


@dataclass(frozen=True)
class MessageOutcome:
    tenant: str
    message_id: str
    outcome: Settled
    stage: str  # 'handover', 'control', 'render'
    rule_id: str | None = None
    reason: str | None = None  # why it failed or was excluded, or the provider's reference


_RECORD = """
WITH u AS (
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                         $6::text[])
           AS u(tenant_id, message_id, outcome, stage, rule_id, reason)
), history AS (
    UPDATE contact_history AS c
       SET outcome = u.outcome,
           rule_id = CASE WHEN u.outcome = 'delivered' THEN c.rule_id ELSE u.rule_id END,
           reason = CASE WHEN u.outcome = 'delivered' THEN c.reason ELSE u.reason END
      FROM u
     WHERE c.tenant_id = u.tenant_id AND c.message_id = u.message_id
)
INSERT INTO message_trace (tenant_id, message_id, stage, outcome, rule_id, reason)
SELECT tenant_id, message_id, stage, outcome, rule_id, reason FROM u
"""


async def record(connection: asyncpg.Connection, outcomes: list[MessageOutcome]) -> None:
    if not outcomes:
        return
    await connection.execute(
        _RECORD,
        [o.tenant for o in outcomes],
        [uuid.UUID(o.message_id) for o in outcomes],
        [o.outcome for o in outcomes],
        [o.stage for o in outcomes],
        [o.rule_id for o in outcomes],
        [o.reason for o in outcomes],
    )
