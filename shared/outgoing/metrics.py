"""The delivery rules' outcomes, where they run: the processor's decision step
(stage="processor") and the senders' control rules (stage="sender"). One definition for
both. Labelled by rule kind (a fixed set) and rule id (the store's ``r<n>`` or a built-in
rule's name; never a name a user typed), bounded: ids past ``MAX_RULE_LABEL`` share one
series."""

from prometheus_client import Counter

RULE_OUTCOMES = Counter(
    "parcours_rule_outcomes_total",
    "Messages a delivery rule excluded or deferred, by rule kind (denylist, quarantine,"
    " consent, filtering, capacity, control, fatigue, quietHours) and stage",
    ["kind", "rule", "outcome", "stage"],
)
MAX_RULE_LABEL = 500
_BUILT_IN = frozenset({"denylist", "quarantine", "consent"})


def rule_label(rule_id: str | None) -> str:
    """A rule's id as a label value, from a bounded set."""
    if rule_id is None:
        return "none"
    if rule_id in _BUILT_IN:
        return rule_id
    number = rule_id[1:]
    if rule_id[:1] == "r" and number.isdigit() and 0 < int(number) <= MAX_RULE_LABEL:
        return rule_id
    return "other"

