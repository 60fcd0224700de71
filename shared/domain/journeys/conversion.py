"""Conversion of a journey version's instances to its goals: a share with its 95 %
confidence interval (Wilson's, from scipy: no hand-written formula), overall, per split
branch (the control group beside them), per node passed and per last message sent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scipy.stats import binomtest  # type: ignore[import-untyped]

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Share:
    """``converted`` of ``out_of``; rate and interval None when ``out_of`` is 0."""
    out_of: int
    converted: int

    def as_json(self, base: str = "entered") -> dict[str, Any]:
        if self.out_of == 0:
            return {base: 0, "converted": self.converted, "rate": None, "ci95": None}
        interval = binomtest(self.converted, self.out_of).proportion_ci(
            confidence_level=CONFIDENCE, method="wilson")
        return {base: self.out_of, "converted": self.converted,
                "rate": round(self.converted / self.out_of, 4),
                "ci95": [round(float(interval.low), 4), round(float(interval.high), 4)]}


@dataclass(frozen=True)
class GoalCounts:
    """One goal's counts over a cohort of instances (those entered in the window)."""
    entered: Share  # instances that ran the journey (not held out)
    held_out: Share  # the tenant's control group, entered nothing
    branches: Mapping[str, Mapping[str, Share]]  # split node -> branch -> share
    nodes: Mapping[str, Share]  # node -> instances that entered it
    messages: Mapping[str, Share]  # action node -> its sends, converted after it last


def report(goal_id: str, counts: GoalCounts) -> dict[str, Any]:
    return {
        "goal": goal_id, **counts.entered.as_json(), "heldOut": counts.held_out.as_json(),
        "branches": {node: {name: share.as_json() for name, share in branches.items()}
                     for node, branches in counts.branches.items()},
        "nodes": {node: share.as_json() for node, share in counts.nodes.items()},
        "messages": {node: share.as_json("sent") for node, share in counts.messages.items()},
    }
