"""Event statuses and the one rule for moving between them.

Kafka delivers at least once, so status writes can arrive late or twice: a write
only wins over a status of lower rank, which keeps terminal statuses terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    PAUSED = "paused"
    PROCESSED = "processed"
    IGNORED = "ignored"
    DELIVERY_FAILED = "deliveryFailed"
    ROUTING_FAILED = "routingFailed"
    TOO_OLD = "tooOld"
    TARGETING_FAILED = "targetingFailed"
    # Ours, beside the nine of the reference: a delivery rule kept it from going.
    EXCLUDED = "excluded"


TERMINAL = frozenset(
    {
        Status.PROCESSED,
        Status.IGNORED,
        Status.DELIVERY_FAILED,
        Status.ROUTING_FAILED,
        Status.TOO_OLD,
        Status.TARGETING_FAILED,
        Status.EXCLUDED,
    }
)

# paused ranks below processing: a held event moves on to processing when its message
# is resumed, never back.
RANK: dict[Status, int] = {
    Status.PENDING: 0,
    Status.PAUSED: 1,
    Status.PROCESSING: 2,
    **{status: 3 for status in TERMINAL},
}


def supersedes(new: Status, old: Status | None) -> bool:
    """Whether ``new`` may replace ``old``; equal ranks keep the first write."""
    return old is None or RANK[new] > RANK[old]


# What each status means, for the API's documentation (OpenAPI) and the README.
DESCRIPTIONS: dict[Status, str] = {
    Status.PENDING: "accepted, not handled yet (or waiting for its scheduled time)",
    Status.PAUSED: "held while the event's message is paused; sent on resume",
    Status.PROCESSING: "routed to its sender; the message is on its way",
    Status.PROCESSED: "the SMTP server or provider accepted the message",
    Status.IGNORED: "refused with a 503 at ingestion; never sent",
    Status.DELIVERY_FAILED: "the SMTP server or provider refused it (reason: its reply)",
    Status.ROUTING_FAILED: "event or message not published, or an invalid record produced "
                           "to Kafka",
    Status.TOO_OLD: "its expiration passed before it could be sent",
    Status.TARGETING_FAILED: "a profile-based event that matched no profile",
    Status.EXCLUDED: "a delivery rule kept the message from going (reason: the rule and"
                     " why: consent, denylist, quarantine, fatigue, a typology's rule)",
}
# The enum's docstring is its description in JSON Schema (pydantic reads ``__doc__``).
Status.__doc__ = "The event's status:\n\n" + "\n".join(
    f"- `{status.value}`: {meaning}" for status, meaning in DESCRIPTIONS.items())


@dataclass(frozen=True)
class StatusWrite:
    """A status for an event, as every stage records it (in batches)."""

    pkey: str
    tenant: str
    event_id: str
    status: Status
    reason: str | None = None
    message_id: str | None = None

    def row(self) -> tuple[object, ...]:
        return (
            self.pkey, self.tenant, self.event_id, self.status.value,
            RANK[self.status], self.reason, self.message_id,
        )
