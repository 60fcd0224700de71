"""The journey state machine: ``start`` puts a profile on a journey, ``advance`` moves an
instance on an input. Pure: (plan, instance, input, now) -> (instance, effects); the
engine applies the effects and stores the instance in one conditional write on its token,
so of an awaited input and its timeout exactly one wins (the other finds a newer token and
is dropped here as stale).

The early rule: a reaction to one of the instance's messages, or a journey event the
journey listens for, that arrives while the instance is not waiting for it is kept on the
instance (reactions for its life, events for EARLY_WINDOW; at most MAX_SEEN, the newest);
a listen node entered later takes the first that matches a branch, in the order they came,
as if it had just arrived. So a purchase made while the thank-you's profile is still on
the step before the wait is not lost, and an email opened before its reaction node counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from shared.domain.conditions import Checked, ConditionDataError, matches
from shared.domain.journeys.definition import (
    Action,
    Branch,
    Decision,
    End,
    Goal,
    HttpCall,
    JourneyDefinition,
    Listen,
    Node,
    Split,
    UpdateProfile,
    Wait,
    wait_until,
)
from shared.domain.journeys.instance import (
    CallHttp,
    CancelTimer,
    Effect,
    GoalExit,
    Input,
    Instance,
    JourneyEvent,
    Reaction,
    Resume,
    Seen,
    Send,
    SetTimer,
    State,
    Step,
    Stop,
    TimerFired,
)
from shared.domain.journeys.instance import UpdateProfile as UpdateEffect
from shared.domain.journeys.send_window import opens_at, recipient_zone
from shared.domain.journeys.split import bucket, choose

EARLY_WINDOW = timedelta(minutes=10)
MAX_SEEN = 20
MAX_STEPS = 200  # nodes run on one input: validation refuses loops with no wait
_IDS = uuid.UUID("5b0b1f7e-3c1e-4d0e-9a57-7061726a6f75")  # namespace of journey ids


@dataclass(frozen=True)
class Plan:
    """A journey version ready to run: its definition, its conditions checked against the
    tenant's paths (``conditions[node][i]`` for a condition node's branch i,
    ``event_conditions[node][i]`` for a listen's event branch i), and the test mode's time
    factor (waits divided by ``speed``). ``tenant``: whose it is — instance ids, and the
    ids of the messages they send, are the tenant's (two tenants may each have a journey
    ``seed`` and a profile ``p1``)."""
    definition: JourneyDefinition
    version: int
    conditions: Mapping[str, Sequence[Checked]] = field(default_factory=dict)
    event_conditions: Mapping[str, Mapping[int, Checked]] = field(default_factory=dict)
    speed: float = 1.0
    tenant: str = ""
    goal_conditions: Mapping[str, Checked] = field(default_factory=dict)  # goal id -> when
    time_zone: str = "UTC"  # the tenant's (rule settings): a send window's, without the profile's
    profile_goals: Mapping[str, Checked] = field(default_factory=dict)  # goal id -> condition

    def node(self, node_id: str) -> Node:
        return self.definition.node(node_id)

    def listened(self) -> set[str]:
        """The journey events some listen waits for."""
        return {b.event.event_id for n in self.definition.nodes if isinstance(n, Listen)
                for b in n.branches if b.event is not None}


def instance_id(tenant: str, journey_id: str, version: int, profile_id: str, entry: int
                ) -> str:
    """Stable: the engine redoing an entry makes the same instance."""
    return str(uuid.uuid5(
        _IDS, f"{tenant}\x00{journey_id}\x00{version}\x00{profile_id}\x00{entry}"))


def start(plan: Plan, profile_id: str, entry: int, profile: Mapping[str, Any],
          now: datetime, held_out: bool = False, hold_until: datetime | None = None
          ) -> tuple[Instance, list[Effect]]:
    """A profile enters (its ``entry``-th time): run from the entry's next node until a
    wait or an end. ``held_out``: the profile is in the tenant's control group
    (``holdout``): its instance ends ``heldOut`` at the entry, having run nothing, so it
    is counted like a branch beside those who entered. ``hold_until``: the entry's rate
    is used up until then: the instance waits at the entry (a durable timer, a ``held``
    step) and runs when it fires."""
    definition = plan.definition
    instance = Instance(definition.id, plan.version, profile_id,
                        instance_id(plan.tenant, definition.id, plan.version, profile_id,
                                    entry),
                        State.WAITING, "entry", 0, now)
    effects: list[Effect] = [Step("entered", "entry")]
    if held_out:
        return _end(instance, State.HELD_OUT, effects, "heldOut", "the tenant's control group")
    if hold_until is not None and hold_until > now:
        effects.append(Step("held", "entry", hold_until.isoformat()))
        instance = replace(instance, state=State.WAITING, token=instance.token + 1,
                           waiting_since=now)
        return instance, [*effects, SetTimer(instance.token, hold_until)]
    return _run(plan, instance, definition.entry.next, profile, now, effects)


def advance(plan: Plan, instance: Instance, event: Input, now: datetime
            ) -> tuple[Instance, list[Effect]]:
    """Move ``instance`` on ``event``. An ended instance, a stale timer and an input the
    instance does not wait for change nothing but what the early rule keeps."""
    if instance.ended:
        return instance, []
    if isinstance(event, Stop):
        return _end(instance, State.STOPPED, [CancelTimer(instance.token)],
                    "stopped", event.reason)
    if isinstance(event, TimerFired):
        return _timer(plan, instance, event, now)
    if isinstance(event, Resume):
        return _resumed(plan, instance, event, now)
    if isinstance(event, GoalExit):
        return _end(instance, State.EXITED, [CancelTimer(instance.token)], "exited",
                    f"goal {event.goal_id}")
    if isinstance(event, JourneyEvent) and any(
            c.event_id == event.event_id for c in plan.definition.exit):
        return _end(instance, State.EXITED, [CancelTimer(instance.token)], "exited",
                    f"exit criterion {event.event_id}")
    if isinstance(event, JourneyEvent) and (exiting := [
            g for g in reached_goals(plan, instance, event, now) if g.exit]):
        return _end(instance, State.EXITED, [CancelTimer(instance.token)], "exited",
                    f"goal {exiting[0].id}")
    seen = _seen(event, now)
    node = plan.node(instance.node) if instance.node != "entry" else None
    if isinstance(node, Listen):
        branch = _matching(plan, node, instance, seen, now)
        if branch is not None:
            return _resolve(plan, instance, node, branch, seen, event.profile, now,
                            [CancelTimer(instance.token)])
    return _keep(plan, instance, seen, now), []


def reached_goals(plan: Plan, instance: Instance, event: JourneyEvent, now: datetime
                  ) -> list[Goal]:
    """The goals ``event`` reaches for ``instance`` (waiting or ended): its type, its
    ``when``, within the goal's time from the entry (compressed in test mode like the
    waits)."""
    return [goal for goal in plan.definition.goals
            if goal.event_id is not None and goal.event_id == event.event_id
            and instance.entered_at >= goal_deadline(plan, goal, now)
            and (goal.id not in plan.goal_conditions
                 or matches(plan.goal_conditions[goal.id], {"event": dict(event.data)},
                            now=now))]


def goal_deadline(plan: Plan, goal: Goal, now: datetime) -> datetime:
    """Instances that entered after this moment may still reach ``goal`` at ``now``."""
    return now - goal.within / plan.speed


def last_message(instance: Instance) -> str | None:
    """The action node of the last message the instance was sent (sends are kept in the
    order they went)."""
    return list(instance.sent)[-1] if instance.sent else None


def _resumed(plan: Plan, instance: Instance, event: Resume, now: datetime
             ) -> tuple[Instance, list[Effect]]:
    """On resume, a listen takes the first input kept while paused that matches a branch,
    in the order they came (as when it is entered); nothing else changes."""
    node = plan.node(instance.node) if instance.node != "entry" else None
    if not isinstance(node, Listen):
        return instance, []
    for seen in instance.seen:
        branch = _matching(plan, node, instance, seen, now)
        if branch is not None:
            return _resolve(plan, instance, node, branch, seen, event.profile, now,
                            [CancelTimer(instance.token)])
    return instance, []


def hold(plan: Plan, instance: Instance, event: Reaction | JourneyEvent, now: datetime
         ) -> Instance:
    """A paused journey's instance holds where it is: an input is kept as the early rule
    keeps one (a listen entered after the resume takes it), nothing moves."""
    if instance.ended:
        return instance
    return _keep(plan, instance, _seen(event, now), now)


def _seen(event: Reaction | JourneyEvent, now: datetime) -> Seen:
    if isinstance(event, Reaction):
        return Seen("reaction", event.message_id, event.kind, event.link, event.machine,
                    dict(event.data), now)
    return Seen("event", event.event_id, "", None, False, dict(event.data), now)


def _keep(plan: Plan, instance: Instance, seen: Seen, now: datetime) -> Instance:
    """The early rule's memory: reactions to the instance's own messages, and events the
    journey listens for, the newest MAX_SEEN; events only for EARLY_WINDOW."""
    if seen.kind == "reaction" and seen.key not in instance.sent.values():
        return instance
    if seen.kind == "event" and seen.key not in plan.listened():
        return instance
    kept = [s for s in instance.seen
            if s.kind == "reaction" or now - s.at <= EARLY_WINDOW] + [seen]
    return replace(instance, seen=tuple(kept[-MAX_SEEN:]))


def _matching(plan: Plan, node: Listen, instance: Instance, seen: Seen, now: datetime
              ) -> Branch | None:
    for index, branch in enumerate(node.branches):
        if seen.kind == "reaction" and branch.reaction is not None:
            wanted = branch.reaction
            if (instance.sent.get(wanted.action) == seen.key and wanted.kind == seen.what
                    and (wanted.link is None or wanted.link == seen.link)
                    and not (seen.machine and wanted.human_only)):
                return branch
        if seen.kind == "event" and branch.event is not None \
                and branch.event.event_id == seen.key:
            condition = plan.event_conditions.get(node.id, {}).get(index)
            if condition is None or matches(condition, {"event": seen.data}, now=now):
                return branch
    return None


def _resolve(plan: Plan, instance: Instance, node: Listen, branch: Branch, seen: Seen,
             profile: Mapping[str, Any], now: datetime, effects: list[Effect]
             ) -> tuple[Instance, list[Effect]]:
    """The listen resolved by ``seen``: its data kept for later nodes (``waits.<node>``)."""
    kind = "reaction" if seen.kind == "reaction" else "event"
    data = {"kind": seen.what, **seen.data} if kind == "reaction" else dict(seen.data)
    instance = replace(instance, waits={**instance.waits, node.id: data},
                       seen=tuple(s for s in instance.seen if s is not seen))
    effects.append(Step(kind, node.id, seen.what or seen.key))
    return _run(plan, instance, branch.next, profile, now, effects)


def _timer(plan: Plan, instance: Instance, fired: TimerFired, now: datetime
           ) -> tuple[Instance, list[Effect]]:
    if fired.token != instance.token or instance.state is not State.WAITING:
        return instance, []  # stale: the wait it was set for was resolved otherwise
    effects: list[Effect] = [CancelTimer(fired.token)]  # claimed already: a no-op but for a redo
    if instance.node == "entry":  # held by the entry's rate: its turn came
        return _run(plan, instance, plan.definition.entry.next, fired.profile, now, effects)
    node = plan.node(instance.node)
    if isinstance(node, Wait):
        return _run(plan, instance, node.next, fired.profile, now, effects)
    if isinstance(node, Action):  # its window opened (in test mode, sooner: compressed)
        instance, effects = _send(instance, node, effects)
        return _run(plan, instance, node.next, fired.profile, now, effects)
    assert isinstance(node, Listen) and node.timeout is not None
    if node.timeout.next is None:
        return _end(instance, State.TIMED_OUT, effects, "timedOut", "")
    effects.append(Step("timedOut", node.id))
    return _run(plan, instance, node.timeout.next, fired.profile, now, effects)


def _send(instance: Instance, node: Action, effects: list[Effect]
          ) -> tuple[Instance, list[Effect]]:
    message_id = _effect_id(instance, "message")
    effects += [Send(node.id, node.type, node.message, message_id),
                Step("actionSent", node.id, message_id)]
    return replace(instance, sent={**instance.sent, node.id: message_id}), effects


def _end(instance: Instance, state: State, effects: list[Effect], kind: str, reason: str
         ) -> tuple[Instance, list[Effect]]:
    ended = replace(instance, state=state, waiting_since=None, seen=(),
                    reason=reason or None)
    return ended, [*effects, Step(kind, instance.node, reason)]


def _run(plan: Plan, instance: Instance, node_id: str, profile: Mapping[str, Any],
         now: datetime, effects: list[Effect]) -> tuple[Instance, list[Effect]]:
    """Run nodes from ``node_id`` until one waits or the instance ends."""
    for _ in range(MAX_STEPS):
        effects.append(Step("transition", instance.node, node_id))
        node = plan.node(node_id)
        instance = replace(instance, node=node_id, steps=instance.steps + 1,
                           waiting_since=None)
        effects.append(Step("entered", node_id))
        if isinstance(node, End):
            return _end(instance, State.FINISHED, effects, "finished", "")
        if isinstance(node, Action):
            if node.window is not None:
                opens = opens_at(node.window, now, recipient_zone(profile, plan.time_zone))
                if opens > now:  # outside its window: the message waits, never dropped
                    effects.append(Step("deferred", node_id, opens.isoformat()))
                    return _wait(plan, instance, now, opens, effects)
            instance, effects = _send(instance, node, effects)
            node_id = node.next
        elif isinstance(node, UpdateProfile):
            effects.append(UpdateEffect(node_id, dict(node.set), _effect_id(instance, "write")))
            profile = updated(profile, node.set)  # what the nodes after it read
            node_id = node.next
        elif isinstance(node, HttpCall):
            effects.append(CallHttp(node_id, node.url, node.method, node.timeout_ms,
                                    _effect_id(instance, "call")))
            node_id = node.next
        elif isinstance(node, Decision):
            record = {**profile, "waits": instance.waits}
            try:
                node_id = next((case.next for case, checked in
                                zip(node.branches, plan.conditions.get(node_id, ()),
                                    strict=False)
                                if matches(checked, record, now=now)), node.otherwise)
            except ConditionDataError as error:
                return _end(instance, State.ERROR, effects, "error", f"{node_id}: {error}")
        elif isinstance(node, Split):
            taken = choose(node.branches, bucket(plan.tenant, plan.definition.id,
                                                 plan.version, node_id, instance.profile_id))
            effects.append(Step("split", node_id, taken.name))
            instance = replace(instance, branches={**instance.branches, node_id: taken.name})
            node_id = taken.next
        elif isinstance(node, Wait):
            due = wait_until(node, now, dict(profile))
            if due is None or due <= now:
                node_id = node.next  # no date, or a date gone: on at once
                continue
            return _wait(plan, instance, now, due, effects)
        elif isinstance(node, Listen):
            instance = replace(instance, token=instance.token + 1)
            for seen in instance.seen:  # the early rule: what came before, in order
                if seen.kind == "event" and now - seen.at > EARLY_WINDOW:
                    continue
                branch = _matching(plan, node, instance, seen, now)
                if branch is not None:
                    return _resolve(plan, instance, node, branch, seen, profile, now,
                                    effects)
            due = None if node.timeout is None else now + node.timeout.after / plan.speed
            return _wait(plan, instance, now, due, effects, tokened=True)
    return _end(instance, State.ERROR, effects, "error",
                f"more than {MAX_STEPS} nodes on one input")


def _wait(plan: Plan, instance: Instance, now: datetime, due: datetime | None,
          effects: list[Effect], tokened: bool = False) -> tuple[Instance, list[Effect]]:
    token = instance.token if tokened else instance.token + 1
    if due is not None and not tokened:  # a wait's own date: compressed in test mode
        due = now + (due - now) / plan.speed
    instance = replace(instance, state=State.WAITING, token=token, waiting_since=now)
    if due is not None:
        effects.append(SetTimer(token, due))
    return instance, effects


def _effect_id(instance: Instance, what: str) -> str:
    """Names a node's effect by the instance and how many nodes it had run: redoing the
    same input on the same stored instance names it the same."""
    return str(uuid.uuid5(_IDS, f"{instance.instance_id}\x00{what}\x00{instance.steps}"))


def updated(profile: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The profile record (``condition_record``'s shape) with an updateProfile node's
    values merged in as its write merges them: fields replaced, ``attributes`` and
    ``consent`` merged by name (a null removes an attribute), so a condition or a wait
    after the update, in the same move, reads what it wrote."""
    merged = dict(profile)
    for key, value in values.items():
        if key == "attributes" and isinstance(value, Mapping):
            attributes = {**(profile.get("attributes") or {}), **value}
            merged[key] = {k: v for k, v in attributes.items() if v is not None}
        elif key == "consent" and isinstance(value, Mapping):
            consent = dict(profile.get("consent") or {})
            for channel, change in value.items():
                if isinstance(change, Mapping):
                    consent[channel] = {**(consent.get(channel) or {}), **change}
            merged[key] = consent
        elif key != "topics":  # shaped otherwise in the record; read again next move
            merged[key] = value
    return merged
