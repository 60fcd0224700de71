"""Delivery rules: what may go to whom, and when (see ``decide``)."""

from shared.domain.delivery_rules.decide import (
    Candidate,
    Contact,
    Decision,
    Facts,
    Filtering,
    Rules,
    Verdict,
    decide,
)
from shared.domain.delivery_rules.model import (
    AnyRule,
    CapacityRule,
    ControlRule,
    FatigueRule,
    FilteringRule,
    QuietHoursRule,
    RuleKind,
)

__all__ = [
    "AnyRule", "Candidate", "CapacityRule", "Contact", "ControlRule", "Decision", "Facts",
    "FatigueRule", "Filtering", "FilteringRule", "QuietHoursRule", "RuleKind", "Rules",
    "Verdict", "decide",
]
