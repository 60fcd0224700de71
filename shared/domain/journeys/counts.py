"""Per-node counts of a journey version, from its step events and its waiting instances.

- ``entered``: steps ``entered`` at the node;
- ``passed``: transitions from it (a transition's node is where it came from);
- ``waiting``: instances waiting on it now;
- the entry's ``heldOut``: profiles of the tenant's control group (holdout), which entered
  nothing (counted in ``exited`` too);
- ``exited``: instances that ended at it (finished, stopped, exited, error, and timedOut
  where the listen's timeout has no path: with one, a timeout goes on, and is passed);
- an action's ``actionSent``, ``actionExcluded`` (with the rule that excluded it) and
  ``deferred`` (waited for its send window);
- a listen's ``reaction``, ``event`` and ``timedOut``;
- a split's ``branches``: profiles that took each branch, by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.domain.journeys.definition import Action, JourneyDefinition, Listen, Split

ENDS = ("finished", "stopped", "exited", "error", "heldOut")


def node_counts(definition: JourneyDefinition, steps: Mapping[tuple[str, str], int],
                excluded: Mapping[tuple[str, str], int], waiting: Mapping[str, int]
                ) -> list[dict[str, Any]]:
    """One entry per node, the entry first, then the nodes as the definition lists them.
    ``steps``: counts by (node, kind); ``excluded``: the steps' details by (node, detail):
    an action's actionExcluded by rule, a split's branches by name."""
    def count(node: str, kind: str) -> int:
        return steps.get((node, kind), 0)

    def base(node: str, kind: str) -> dict[str, Any]:
        return {"node": node, "type": kind, "entered": count(node, "entered"),
                "passed": count(node, "transition"), "waiting": waiting.get(node, 0),
                "exited": sum(count(node, k) for k in ENDS)}

    out = [base("entry", definition.entry.type)]
    out[0]["heldOut"] = count("entry", "heldOut")  # the control group: ran nothing
    for node in definition.nodes:
        counts = base(node.id, node.type)
        if isinstance(node, Action):
            counts["actionSent"] = count(node.id, "actionSent")
            counts["actionExcluded"] = count(node.id, "actionExcluded")
            counts["deferred"] = count(node.id, "deferred")  # waited for its send window
            counts["excludedBy"] = {rule: n for (at, rule), n in sorted(excluded.items())
                                    if at == node.id}
        elif isinstance(node, Split):
            counts["branches"] = {b.name: excluded.get((node.id, b.name), 0)
                                  for b in node.branches}
        elif isinstance(node, Listen):
            counts |= {k: count(node.id, k) for k in ("reaction", "event", "timedOut")}
            if node.timeout is not None and node.timeout.next is None:
                counts["exited"] += counts["timedOut"]
        out.append(counts)
    return out
