"""Reactions metrics. Labels are bounded: reaction kinds, and machine or not."""

from prometheus_client import Counter

REACTIONS = Counter(
    "parcours_reactions_total",
    "Reactions read from parcours.reactions.v1 and added to their message's trace",
    ["kind", "machine"],
)
