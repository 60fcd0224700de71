"""Conversion of a journey version's instances to its goals: a share with its 95 %
confidence interval (Wilson's, from scipy: no hand-written formula), overall, per split
branch (the control group beside them), per node passed and per last message sent.

Two shares compared (the two branches of a split, everyone against the control group):
the difference of their rates, its 95 % interval by Newcombe's hybrid score method (1998,
method 10: built from the two Wilson intervals scipy gives, not a normal approximation,
so it holds for small counts and rates near 0 or 1), and the two-sided p-value of
Fisher's exact test (scipy's ``fisher_exact``) that the two rates are the same."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import hypot
from typing import Any

from scipy.stats import binomtest, fisher_exact  # type: ignore[import-untyped]

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Share:
    """``converted`` of ``out_of``; rate and interval None when ``out_of`` is 0."""
    out_of: int
    converted: int

    @property
    def rate(self) -> float:
        return self.converted / self.out_of

    def wilson(self) -> tuple[float, float]:
        """The rate's 95 % interval (Wilson's, scipy's ``binomtest``); ``out_of`` > 0."""
        interval = binomtest(self.converted, self.out_of).proportion_ci(
            confidence_level=CONFIDENCE, method="wilson")
        return float(interval.low), float(interval.high)

    def as_json(self, base: str = "entered") -> dict[str, Any]:
        if self.out_of == 0:
            return {base: 0, "converted": self.converted, "rate": None, "ci95": None}
        low, high = self.wilson()
        return {base: self.out_of, "converted": self.converted,
                "rate": round(self.rate, 4), "ci95": [round(low, 4), round(high, 4)]}


@dataclass(frozen=True)
class Difference:
    """``a``'s rate minus ``b``'s, its 95 % interval and Fisher's exact p-value."""
    difference: float
    low: float
    high: float
    p_value: float


def compare(a: Share, b: Share) -> Difference | None:
    """``a`` against ``b``; None when either has no instance."""
    if a.out_of == 0 or b.out_of == 0:
        return None
    (low_a, high_a), (low_b, high_b) = a.wilson(), b.wilson()
    rate_a, rate_b = a.rate, b.rate
    difference = rate_a - rate_b
    low = difference - hypot(rate_a - low_a, high_b - rate_b)
    high = difference + hypot(high_a - rate_a, rate_b - low_b)
    _, p_value = fisher_exact([[a.converted, a.out_of - a.converted],
                               [b.converted, b.out_of - b.converted]])
    return Difference(difference, max(-1.0, low), min(1.0, high), float(p_value))


def _difference_json(a: str, b: str, difference: Difference | None) -> dict[str, Any]:
    if difference is None:
        return {"a": a, "b": b, "difference": None, "ci95": None, "pValue": None}
    return {"a": a, "b": b, "difference": round(difference.difference, 4),
            "ci95": [round(difference.low, 4), round(difference.high, 4)],
            "pValue": round(difference.p_value, 4)}


def differences(counts: GoalCounts, order: Mapping[str, Sequence[str]] | None = None
                ) -> dict[str, Any]:
    """Everyone who ran the journey against the control group, and per split node with
    exactly two branches the first against the second (``order``: split node -> its
    branches' names in the definition; else the branches taken, by name)."""
    splits = {}
    order = order or {}
    for node in dict.fromkeys([*order, *counts.branches]):
        branches = counts.branches.get(node, {})
        names = list(order.get(node, sorted(branches)))
        if len(names) == 2:
            a, b = names
            empty = Share(0, 0)
            splits[node] = _difference_json(a, b, compare(branches.get(a, empty),
                                                          branches.get(b, empty)))
    return {"heldOut": _difference_json("entered", "heldOut",
                                        compare(counts.entered, counts.held_out)),
            "splits": splits}


@dataclass(frozen=True)
class GoalCounts:
    """One goal's counts over a cohort of instances (those entered in the window)."""
    entered: Share  # instances that ran the journey (not held out)
    held_out: Share  # the tenant's control group, entered nothing
    branches: Mapping[str, Mapping[str, Share]]  # split node -> branch -> share
    nodes: Mapping[str, Share]  # node -> instances that entered it
    messages: Mapping[str, Share]  # action node -> its sends, converted after it last


def report(goal_id: str, counts: GoalCounts,
           order: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    return {
        "goal": goal_id, **counts.entered.as_json(), "heldOut": counts.held_out.as_json(),
        "branches": {node: {name: share.as_json() for name, share in branches.items()}
                     for node, branches in counts.branches.items()},
        "nodes": {node: share.as_json() for node, share in counts.nodes.items()},
        "messages": {node: share.as_json("sent") for node, share in counts.messages.items()},
        "differences": differences(counts, order),
    }
