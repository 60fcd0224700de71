"""Reactions metrics. Labels are bounded: reaction kinds, and machine or not."""

from prometheus_client import Counter, Gauge

REACTIONS = Counter(
    "parcours_reactions_total",
    "Reactions read from parcours.reactions.v1 and added to their message's trace",
    ["kind", "machine"],
)

PURGED = Counter(
    "parcours_retention_purged_rows_total",
    "Rows deleted by the retention purge, by table (message_trace, contact_history,"
    " reactions, tracked_messages)", ["table"])
PURGE_RUNS = Counter(
    "parcours_retention_purges_total",
    "Retention purges, by outcome (done; skipped: another process held the lock; failed)",
    ["outcome"])
PURGE_SECONDS = Gauge("parcours_retention_last_purge_seconds",
                      "How long the last completed retention purge took")
RELAYED = Counter("parcours_reactions_relayed_total",
                  "Reactions produced from the outbox to parcours.reactions.v1 by the"
                  " reactions service's relay")
