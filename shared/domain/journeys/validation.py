"""What a journey's graph means, checked before it may be published: every problem with
the node it belongs to. Errors block publishing; warnings do not.

Errors: a duplicate or unknown node id, a node no path reaches, a loop in which no node
waits (an instance would spin), a timeout or wait over 90 days, a reaction to a node that
is not an action upstream or of another channel, a missing or unpublished message (a
journey message is an event configuration JMS…, of the node's channel), an unknown
journey event, an http node whose host is not on the tenant's allow-list. Warnings: a
listen without a timeout (instances may wait for ever), a reaction to an action that some
paths to the listen skip (there it cannot happen), a node from which no end can be
reached.

A join never deadlocks: an instance follows one path at a time, so a node several paths
name goes on when the one instance reaches it (there is no waiting for the other paths).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Literal

from shared.domain.conditions import ConditionError, Schema, check_condition
from shared.domain.events import is_event_id, is_journey_message_id
from shared.domain.journeys.definition import (
    MAX_TIMEOUT,
    Action,
    AudienceEntry,
    Decision,
    End,
    HttpCall,
    JourneyDefinition,
    Listen,
    Node,
    Wait,
    successors,
    waits,
)
from shared.domain.journeys.http_hosts import HostEntry, allowed, refusal
from shared.domain.journeys.journey_events import JourneyEventType, event_paths
from shared.domain.journeys.plan import wait_paths

ENTRY = "entry"  # the node id problems of the entry are given
# What validation knows of a journey message (JMS…): (channel, published), or only
# whether it is published.
MessageInfo = bool | tuple[str, bool]

# Which channel's messages a reaction kind can follow (`failed` follows any).
REACTION_CHANNELS: dict[str, set[str]] = {
    "delivered": {"email"}, "opened": {"email"}, "clicked": {"email"},
    "bounced": {"email"}, "complained": {"email"}, "unsubscribed": {"email", "sms"},
    "pushOpened": {"push"}, "smsDelivered": {"sms"}, "failed": {"email", "sms", "push"},
}


@dataclass(frozen=True)
class Problem:
    node: str
    severity: Literal["error", "warning"]
    message: str

    def as_json(self) -> dict[str, str]:
        return {"node": self.node, "severity": self.severity, "message": self.message}


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def validate(definition: JourneyDefinition, *,
             messages: Mapping[str, MessageInfo] | None = None,
             journey_events: Set[str] | None = None,
             paths: Schema | None = None,
             event_types: Mapping[str, JourneyEventType] | None = None,
             http_hosts: Sequence[HostEntry] | None = None) -> list[Problem]:
    """Every problem of ``definition``. ``messages``: the journey's messages by id, each
    ``(channel, published)`` (or only whether it is published: its channel then is not
    checked), published meaning it can be sent (a live version, published or paused);
    ``journey_events``: the tenant's journey event ids; ``paths``: what a condition node
    may test of the profile; ``event_types``: the journey event types, for the conditions
    on their data; ``http_hosts``: the tenant's allow-list, which every http node's URL
    must match. Any left None is not checked."""
    problems: list[Problem] = []
    nodes: dict[str, Node] = {}
    for node in definition.nodes:
        if node.id in nodes:
            problems.append(Problem(node.id, "error", f"two nodes are named {node.id!r}"))
        nodes.setdefault(node.id, node)
    if definition.entry.next not in nodes:
        problems.append(Problem(ENTRY, "error",
                                f"`next` names {definition.entry.next!r}, no such node"))
    for node in nodes.values():
        for target in successors(node):
            if target not in nodes:
                problems.append(Problem(node.id, "error",
                                        f"`next` names {target!r}, no such node"))
    graph = {n.id: [t for t in successors(n) if t in nodes] for n in nodes.values()}
    start = definition.entry.next if definition.entry.next in nodes else None
    reached = _reach(graph, start)
    for node_id in nodes:
        if node_id not in reached:
            problems.append(Problem(node_id, "error", "no path from the entry reaches it"))
    problems += _spinning_loops(graph, nodes)
    problems += _durations(nodes)
    problems += _reactions(graph, nodes, start)
    problems += _references(definition, nodes, messages, journey_events)
    if paths is not None:
        problems += _conditions(nodes, {**paths, **wait_paths(definition, event_types or {})})
        problems += _profile_goals(definition, paths)
    if event_types is not None:
        problems += _event_conditions(nodes, event_types)
        problems += _goal_conditions(definition, event_types)
    if http_hosts is not None:
        problems += [Problem(n.id, "error", refusal(n.url)) for n in nodes.values()
                     if isinstance(n, HttpCall) and not allowed(n.url, http_hosts)]
    ends = {n.id for n in nodes.values() if isinstance(n, End)}
    reverse: dict[str, list[str]] = {n: [] for n in nodes}
    for source, targets in graph.items():
        for target in targets:
            reverse[target].append(source)
    can_end = _reach_from(reverse, ends)
    for node_id in reached - can_end:
        problems.append(Problem(node_id, "warning", "no path from here reaches an end"))
    for node in nodes.values():
        if isinstance(node, Listen) and node.timeout is None:
            problems.append(Problem(node.id, "warning", "no timeout: an instance whose"
                                    " branches never happen waits for ever"))
    return sorted(problems, key=lambda p: (p.severity != "error", p.node, p.message))


def _reach(graph: Mapping[str, list[str]], start: str | None) -> set[str]:
    return _reach_from(graph, {start} if start is not None else set())


def _reach_from(graph: Mapping[str, list[str]], starts: Set[str]) -> set[str]:
    seen, todo = set(starts), list(starts)
    while todo:
        for target in graph.get(todo.pop(), []):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _spinning_loops(graph: Mapping[str, list[str]], nodes: Mapping[str, Node]
                    ) -> list[Problem]:
    """A cycle made only of nodes that never wait: removing the waiting nodes, any cycle
    left is one an instance would run round without end."""
    quick = {n: [t for t in graph[n] if not waits(nodes[t])]
             for n in graph if not waits(nodes[n])}
    problems: list[Problem] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for root in quick:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node_id, index = stack.pop()
            if index == 0:
                state[node_id] = 1
                path.append(node_id)
            targets = quick[node_id]
            if index < len(targets):
                stack.append((node_id, index + 1))
                target = targets[index]
                if state.get(target) == 1:
                    loop = path[path.index(target):]
                    problems.append(Problem(target, "error", "a loop with no wait: "
                                            + " → ".join([*loop, target])))
                elif not state.get(target):
                    stack.append((target, 0))
            else:
                state[node_id] = 2
                path.pop()
    return problems


def _durations(nodes: Mapping[str, Node]) -> list[Problem]:
    problems = []
    for node in nodes.values():
        if isinstance(node, Listen) and node.timeout and node.timeout.after > MAX_TIMEOUT:
            problems.append(Problem(node.id, "error", "the timeout is over 90 days"))
        if isinstance(node, Wait) and node.duration and node.duration > MAX_TIMEOUT:
            problems.append(Problem(node.id, "error", "the wait is over 90 days"))
    return problems


def _reactions(graph: Mapping[str, list[str]], nodes: Mapping[str, Node],
               start: str | None) -> list[Problem]:
    problems = []
    dominators = _dominators(graph, start)
    reverse: dict[str, list[str]] = {n: [] for n in graph}
    for source, targets in graph.items():
        for target in targets:
            reverse[target].append(source)
    for node in nodes.values():
        if not isinstance(node, Listen):
            continue
        ancestors = _reach_from(reverse, set(reverse[node.id]))
        for branch in node.branches:
            if branch.reaction is None:
                continue
            action = nodes.get(branch.reaction.action)
            name = branch.reaction.action
            if not isinstance(action, Action):
                problems.append(Problem(node.id, "error", f"a reaction to {name!r}, which"
                                        " is not an email, SMS or push action"))
            elif name not in ancestors:
                problems.append(Problem(node.id, "error", f"a reaction to {name!r}, which"
                                        " is not upstream of this node"))
            elif action.type not in REACTION_CHANNELS[branch.reaction.kind]:
                problems.append(Problem(node.id, "error", f"`{branch.reaction.kind}` cannot"
                                        f" follow a {action.type} message ({name!r})"))
            elif name not in dominators.get(node.id, set()):
                problems.append(Problem(node.id, "warning", f"some paths here skip {name!r}:"
                                        " on them this branch cannot happen"))
    return problems


def _dominators(graph: Mapping[str, list[str]], start: str | None) -> dict[str, set[str]]:
    """For each node reached from ``start``, the nodes every path from it passes through
    (itself included): the plain iterative data-flow form, enough for 50 nodes."""
    reached = _reach(graph, start)
    if start is None:
        return {}
    preds: dict[str, list[str]] = {n: [] for n in reached}
    for source in reached:
        for target in graph[source]:
            preds[target].append(source)
    dom = {n: set(reached) for n in reached}
    dom[start] = {start}
    changed = True
    while changed:
        changed = False
        for node_id in reached - {start}:
            common = set.intersection(*(dom[p] for p in preds[node_id])) if preds[node_id] \
                else set()
            new = common | {node_id}
            if new != dom[node_id]:
                dom[node_id], changed = new, True
    return dom


def _references(definition: JourneyDefinition, nodes: Mapping[str, Node],
                messages: Mapping[str, MessageInfo] | None, journey_events: Set[str] | None
                ) -> list[Problem]:
    problems = []
    if messages is not None:
        for node in nodes.values():
            if isinstance(node, Action) and (problem := _message(node, messages)):
                problems.append(problem)
    if journey_events is not None:
        for node in nodes.values():
            if isinstance(node, Listen):
                for branch in node.branches:
                    if branch.event and branch.event.event_id not in journey_events:
                        problems.append(Problem(node.id, "error", "no journey event"
                                                f" {branch.event.event_id!r}"))
        for criterion in definition.exit:
            if criterion.event_id not in journey_events:
                problems.append(Problem("exit", "error",
                                        f"no journey event {criterion.event_id!r}"))
        for goal in definition.goals:
            if goal.event_id is not None and goal.event_id not in journey_events:
                problems.append(Problem(f"goal {goal.id}", "error",
                                        f"no journey event {goal.event_id!r}"))
    if isinstance(definition.entry, AudienceEntry) and definition.entry.every is not None \
            and definition.entry.every.total_seconds() < 3600:
        problems.append(Problem(ENTRY, "error", "an audience is read at most once an hour"))
    return problems


_A = {"email": "an email", "sms": "an SMS", "push": "a push"}


def _message(node: Action, messages: Mapping[str, MessageInfo]) -> Problem | None:
    """An action's message: a journey message (JMS…) the tenant has, of the node's
    channel, with a live version (published or paused)."""
    name = node.message
    if is_event_id(name):
        return Problem(node.id, "error", f"{name!r} is a transactional event: a journey's"
                       " messages are JMS… configurations (POST /admin/v1/events with"
                       f" eventId JMS…, channel {node.type})")
    known = messages.get(name)
    if known is None:
        why = ("" if is_journey_message_id(name)
               else ": a journey's messages are JMS… configurations")
        return Problem(node.id, "error", f"no message {name!r} in this journey{why}")
    channel, published = known if isinstance(known, tuple) else (None, known)
    if channel is not None and channel != node.type:
        return Problem(node.id, "error", f"the message {name!r} is {_A[channel]} message;"
                       f" this node sends {_A[node.type]} message")
    if not published:
        return Problem(node.id, "error", f"the message {name!r} is not published")
    return None


def _conditions(nodes: Mapping[str, Node], paths: Schema) -> list[Problem]:
    """A condition node's tests checked against the paths it may read: the profile's (the
    data of resolved waits, ``waits.<node>.<field>``, comes with journey events' types)."""
    problems = []
    for node in nodes.values():
        if not isinstance(node, Decision):
            continue
        for index, case in enumerate(node.branches):
            try:
                check_condition(case.when, paths)
            except ConditionError as error:
                problems += [Problem(node.id, "error", f"branch {index}, at"
                                     f" {['when', *p.loc]}: {p.msg}") for p in error.problems]
    return problems


def _event_conditions(nodes: Mapping[str, Node], event_types: Mapping[str, JourneyEventType]
                      ) -> list[Problem]:
    """A listen's ``when`` on a journey event's data, checked against the type's fields."""
    problems = []
    for node in nodes.values():
        if not isinstance(node, Listen):
            continue
        for index, branch in enumerate(node.branches):
            if branch.event is None or branch.event.when is None:
                continue
            event_type = event_types.get(branch.event.event_id)
            if event_type is None:
                continue  # an unknown journey event: reported by _references
            try:
                check_condition(branch.event.when, event_paths(event_type))
            except ConditionError as error:
                problems += [Problem(node.id, "error", f"branch {index}, at"
                                     f" {['event', 'when', *p.loc]}: {p.msg}")
                             for p in error.problems]
    return problems


def _goal_conditions(definition: JourneyDefinition,
                     event_types: Mapping[str, JourneyEventType]) -> list[Problem]:
    """A goal's ``when`` on its journey event's data, checked against the type's fields."""
    problems = []
    for goal in definition.goals:
        event_type = event_types.get(goal.event_id) if goal.event_id else None
        if goal.when is None or event_type is None:
            continue  # an unknown journey event: reported by _references
        try:
            check_condition(goal.when, event_paths(event_type))
        except ConditionError as error:
            problems += [Problem(f"goal {goal.id}", "error",
                                 f"at {['when', *p.loc]}: {p.msg}") for p in error.problems]
    return problems


def _profile_goals(definition: JourneyDefinition, paths: Schema) -> list[Problem]:
    """A goal's ``condition`` checked against the profile's paths (an audience's: the
    engine compiles it to SQL over ``profiles``)."""
    problems = []
    for goal in definition.goals:
        if goal.condition is None:
            continue
        try:
            check_condition(goal.condition, paths)
        except ConditionError as error:
            problems += [Problem(f"goal {goal.id}", "error",
                                 f"at {['condition', *p.loc]}: {p.msg}")
                         for p in error.problems]
    return problems
