"""What the senders add to a message's story when it settles: its contact history row's
outcome (``delivered``, ``failed``, or ``excluded`` by a control rule) and one row of its
trace. Part of the ledger's settle statement (``delivery_ledger.settle``).

Contact history rows exist only for the messages the processor's decision step recorded;
the UPDATE finds none for the others, and that is fine. The trace row is written either
way: it is the message's own record of what the sender did.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from shared.domain import timeline

Settled = Literal["delivered", "failed", "excluded"]


@dataclass(frozen=True)
class MessageOutcome:
    tenant: str
    message_id: str
    outcome: Settled
    stage: str  # 'handover', 'control', 'render'
    rule_id: str | None = None
    reason: str | None = None  # why it failed or was excluded, or the provider's reference
    # When it passed each stage (shared.domain.timeline), for a message handed over
    timeline: tuple[float, ...] | None = None


def statement_parts(first: int) -> tuple[str, str]:
    """The outcomes (parameters ``$first`` to ``$first + 6``, as ``columns`` orders them)
    and their contact history update as CTEs, and the trace insert that ends the
    statement: ``record`` runs them alone, the ledger's settle after its own."""
    n = [f"${first + i}" for i in range(7)]
    ctes = f"""
o AS (
    SELECT * FROM unnest({n[0]}::text[], {n[1]}::uuid[], {n[2]}::text[], {n[3]}::text[],
                         {n[4]}::text[], {n[5]}::text[], {n[6]}::text[])
           AS o(tenant_id, message_id, outcome, stage, rule_id, reason, timeline)
), history AS (
    UPDATE contact_history AS c
       SET outcome = o.outcome,
           rule_id = CASE WHEN o.outcome = 'delivered' THEN c.rule_id ELSE o.rule_id END,
           reason = CASE WHEN o.outcome = 'delivered' THEN c.reason ELSE o.reason END
      FROM o
     WHERE c.tenant_id = o.tenant_id AND c.message_id = o.message_id
)"""
    trace = """
INSERT INTO message_trace (tenant_id, message_id, stage, outcome, rule_id, reason, timeline)
SELECT tenant_id, message_id, stage, outcome, rule_id, reason, timeline::float8[] FROM o
"""
    return ctes, trace


def columns(outcomes: list[MessageOutcome]) -> list[list[object]]:
    return [[o.tenant for o in outcomes], [uuid.UUID(o.message_id) for o in outcomes],
            [o.outcome for o in outcomes], [o.stage for o in outcomes],
            [o.rule_id for o in outcomes], [o.reason for o in outcomes],
            [o.timeline and timeline.literal(o.timeline) for o in outcomes]]
