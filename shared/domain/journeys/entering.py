"""Set-based entering: when the way from a version's entry to its first wait reads nothing
of the profile and asks nothing of the world (no message, no update, no call), every
profile that enters at one instant makes the same instance but for its ids, the same
steps and the same timers. ``start`` is then run once per *route* (the branches a profile
takes at the splits on that way, and whether it is in the tenant's control group), and
the store writes a chunk of profiles from those few templates, set-wise
(``journey_store.enter_set``), instead of running ``start`` and writing rows per profile.

What a profile still costs here is its instance id (``advance.instance_id``, a sha1) and,
with a holdout or a split, a sha256 per draw: ``routes`` computes them for a chunk.
A plan whose way reads the profile (a decision, a wait until a profile's date, a send
window in the profile's zone) or sends, updates or calls goes through ``start`` per
profile, as before."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.domain.journeys.advance import _IDS, Plan, start
from shared.domain.journeys.codec import instance_to_json
from shared.domain.journeys.definition import End, Listen, Split, Wait
from shared.domain.journeys.holdout import held_out
from shared.domain.journeys.instance import SetTimer, Step
from shared.domain.journeys.split import bucket, choose
from shared.domain.uuids import uuid5_bytes, uuid5_text, uuid_text

HELD_OUT = ("\x00heldOut",)  # the control group's route: ends at the entry


@dataclass(frozen=True)
class Template:
    """What ``start`` makes for every profile of one route, its ids left out: the
    instance's document without ``profileId`` and ``instanceId``, its state, node and
    token, its steps in order and its timers (token, due)."""
    route: tuple[str, ...]
    document: dict[str, Any]
    state: str
    node: str
    token: int
    steps: tuple[Step, ...]
    timers: tuple[tuple[int, datetime], ...]


def set_based(plan: Plan) -> bool:
    """Whether every way from the entry to a wait or an end reads nothing of the profile
    and has no effect but steps and timers: waits for a duration or until a fixed moment,
    listens, ends, and splits between them (a split draws from the profile's id only)."""
    seen: set[str] = set()
    todo = [plan.definition.entry.next]
    while todo:
        node_id = todo.pop()
        if node_id in seen:
            return False  # a way back on itself before any wait: leave it to ``start``
        seen.add(node_id)
        node = plan.node(node_id)
        if isinstance(node, End | Listen):
            continue
        if isinstance(node, Wait):
            if node.until_field is not None:
                return False
            if node.until is not None:  # a moment gone goes on at once
                todo.append(node.next)
            continue
        if isinstance(node, Split):
            todo += [b.next for b in node.branches]
            continue
        return False
    return True


def route(plan: Plan, profile_id: str, now: datetime) -> tuple[str, ...]:
    """The branches the profile takes at the splits before its first wait (``start``'s
    draws, in order): profiles of one route make one template."""
    taken: list[str] = []
    node_id = plan.definition.entry.next
    for _ in range(len(plan.definition.nodes) + 1):
        node = plan.node(node_id)
        if isinstance(node, Split):
            branch = choose(node.branches, bucket(plan.tenant, plan.definition.id,
                                                  plan.version, node_id, profile_id))
            taken.append(branch.name)
            node_id = branch.next
        elif isinstance(node, Wait) and node.until is not None and node.until <= now:
            node_id = node.next
        else:
            break
    return tuple(taken)


def has_split(plan: Plan) -> bool:
    return any(isinstance(n, Split) for n in plan.definition.nodes)


def template(plan: Plan, profile_id: str, entry: int, now: datetime, held: bool
             ) -> Template:
    """``start`` for one profile of a route, made general: the ids are what differs."""
    instance, effects = start(plan, profile_id, entry, {}, now, held)
    document = instance_to_json(instance)
    del document["profileId"], document["instanceId"]
    return Template(
        HELD_OUT if held else route(plan, profile_id, now), document, instance.state.value,
        instance.node, instance.token,
        tuple(e for e in effects if isinstance(e, Step)),
        tuple((e.token, e.due) for e in effects if isinstance(e, SetTimer)))


class InstanceIds:
    """``advance.instance_id`` for many profiles of one version and entry round: the
    sha1 of the fixed part hashed once (the same uuid5, a third of the time)."""

    def __init__(self, tenant: str, journey_id: str, version: int, entry: int) -> None:
        self._head = hashlib.sha1(_IDS.bytes + f"{tenant}\x00{journey_id}\x00{version}\x00"
                                  .encode(), usedforsecurity=False)
        self._tail = f"\x00{entry}".encode()

    def _digest(self, profile_id: str) -> bytes:
        h = self._head.copy()
        h.update(profile_id.encode())
        h.update(self._tail)
        return h.digest()

    def __call__(self, profile_id: str) -> str:
        return uuid5_text(self._digest(profile_id))

    def raw(self, profile_id: str) -> bytes:
        """The id's 16 bytes (what a chunk sends: no text made, none parsed)."""
        return uuid5_bytes(self._digest(profile_id))


@dataclass(frozen=True)
class Chunk:
    """A chunk of profiles ready to write: their instance ids (each a uuid's 16 bytes)
    and each one's template (an index into ``templates``)."""
    profile_ids: list[str]
    instance_ids: list[bytes]
    groups: list[int]
    templates: list[Template]

    def instance_id(self, at: int) -> str:
        """The text of the ``at``-th profile's instance id."""
        return uuid_text(self.instance_ids[at])


def routes(plan: Plan, tenant: str, profile_ids: Sequence[str], entry: int,
           holdout: Decimal, now: datetime) -> Chunk:
    """Each profile's instance id and template (one ``start`` per route met)."""
    profile_ids = list(dict.fromkeys(profile_ids))  # one entry each, as ``create_many``
    ids = InstanceIds(tenant, plan.definition.id, plan.version, entry)
    split = has_split(plan)
    hold = holdout > 0
    index: dict[tuple[str, ...], int] = {}
    templates: list[Template] = []
    groups: list[int] = []
    for profile_id in profile_ids:
        held = hold and held_out(tenant, profile_id, holdout)
        key = HELD_OUT if held else route(plan, profile_id, now) if split else ()
        at = index.get(key)
        if at is None:
            at = index[key] = len(templates)
            templates.append(template(plan, profile_id, entry, now, held))
        groups.append(at)
    return Chunk(list(profile_ids), [ids.raw(p) for p in profile_ids], groups, templates)


def step_counts(templates: Sequence[Template], stored: Iterable[tuple[int, int]]
                ) -> dict[Step, int]:
    """The steps written, by kind, node and (for a split) branch, from how many instances
    of each template were stored: ``count_steps``' counts without a step per profile."""
    counts: dict[Step, int] = {}
    for at, n in stored:
        for s in templates[at].steps:
            key = Step(s.kind, s.node, s.detail if s.kind == "split" else "")
            counts[key] = counts.get(key, 0) + n
    return counts
