"""The delivery rules' outcomes, where they run: the processor's decision step
(stage="processor") and the senders' control rules (stage="sender"). One definition for
both. Labelled by rule kind (a fixed set), never by rule id or name."""

from prometheus_client import Counter

RULE_OUTCOMES = Counter(
    "parcours_rule_outcomes_total",
    "Messages a delivery rule excluded or deferred, by rule kind (denylist, quarantine,"
    " consent, filtering, capacity, control, fatigue, quietHours) and stage",
    ["kind", "outcome", "stage"],
)
