"""Quarantine rows (migration 013): the senders record address failures; the decision step
reads which addresses are quarantined with its other reads, in one statement
(``contact_history.known``). The transition itself is pure
(``shared.domain.delivery_rules.quarantine``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.domain.delivery_rules.addresses import normalise
from shared.domain.delivery_rules.quarantine import FailureKind, QuarantineState, after_failure
from shared.domain.delivery_rules.tenant import QuarantineSettings


@dataclass(frozen=True)
class AddressFailure:
    """What a sender learnt about an address from the provider's refusal."""

    tenant: str
    channel: str
    address: str
    kind: FailureKind
    reason: str
    settings: QuarantineSettings  # the tenant's thresholds


# Rows are created first (a no-op when they exist), so the lock below covers every key,
# even one two senders meet for the first time at once.
_ENSURE = """
INSERT INTO quarantine (tenant_id, channel, address)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
ON CONFLICT DO NOTHING
"""
_LOCK = """
SELECT tenant_id, channel, address, soft_failures, last_failure_at, quarantined_at,
       release_at, reason
  FROM quarantine
  JOIN unnest($1::text[], $2::text[], $3::text[]) AS u(t, c, a)
    ON tenant_id = u.t AND channel = u.c AND address = u.a
 ORDER BY tenant_id, channel, address
   FOR UPDATE OF quarantine
"""
_WRITE = """
UPDATE quarantine AS q
   SET soft_failures = u.soft_failures, last_failure_at = u.last_failure_at,
       quarantined_at = u.quarantined_at, release_at = u.release_at, reason = u.reason
  FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::timestamptz[],
              $6::timestamptz[], $7::timestamptz[], $8::text[])
       AS u(tenant_id, channel, address, soft_failures, last_failure_at, quarantined_at,
            release_at, reason)
 WHERE q.tenant_id = u.tenant_id AND q.channel = u.channel AND q.address = u.address
"""

Key = tuple[str, str, str]


async def record_failures(
    connection: asyncpg.Connection, failures: list[AddressFailure], now: datetime
) -> dict[Key, QuarantineState]:
    """Apply the failures to their addresses' rows, in the caller's transaction (three
    round trips, only for a batch that has failures). Returns the rows written."""
    if not failures:
        return {}
    keys = sorted({(f.tenant, f.channel, normalise(f.channel, f.address)) for f in failures})
    columns = [list(column) for column in zip(*keys, strict=True)]
    await connection.execute(_ENSURE, *columns)
    rows = await connection.fetch(_LOCK, *columns)
    states: dict[Key, QuarantineState] = {
        (r["tenant_id"], r["channel"], r["address"]): QuarantineState(
            r["soft_failures"], r["last_failure_at"], r["quarantined_at"], r["release_at"],
            r["reason"])
        for r in rows}
    for failure in failures:
        key = (failure.tenant, failure.channel, normalise(failure.channel, failure.address))
        states[key] = after_failure(states.get(key), failure.kind, failure.reason, now,
                                    failure.settings)
    written = [(*key, s.soft_failures, s.last_failure_at, s.quarantined_at, s.release_at,
                s.reason) for key, s in sorted(states.items())]
    await connection.execute(_WRITE, *[list(column) for column in zip(*written, strict=True)])
    return states
