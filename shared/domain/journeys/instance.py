"""A profile's way through one journey version (an instance), what can happen to it (inputs)
and what advancing it asks the world to do (effects). Plain frozen values: the engine
stores an instance as JSON and redoes an input on the stored instance after a crash, so
``advance`` must give the same effects, with the same ids, every time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class State(StrEnum):
    WAITING = "waiting"  # on a listen or wait node, with a token its timer carries
    FINISHED = "finished"  # reached an end
    STOPPED = "stopped"  # the journey was stopped, or the profile removed from it
    TIMED_OUT = "timedOut"  # a listen timed out with no timeout path
    EXITED = "exited"  # an exit criterion's event took it out
    ERROR = "error"  # with the reason
    HELD_OUT = "heldOut"  # in the tenant's control group: entered nothing (holdout.py)


ENDED = frozenset(State) - {State.WAITING}


@dataclass(frozen=True)
class Seen:
    """A reaction to one of the instance's messages, or a journey event, received while the
    instance was not waiting for it: a listen entered later takes it (the early rule)."""
    kind: str  # "reaction" or "event"
    key: str  # the message id, or the journey event id
    what: str  # the reaction kind ("" for events)
    link: int | None
    machine: bool
    data: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True)
class Instance:
    journey_id: str
    version: int
    profile_id: str
    instance_id: str
    state: State
    node: str  # where it waits, or where it ended
    token: int  # of its current wait: a timer or an input for an older one is stale
    entered_at: datetime
    waiting_since: datetime | None = None
    steps: int = 0  # nodes run so far: with the instance id, names its messages and calls
    sent: Mapping[str, str] = field(default_factory=dict)  # action node -> message id
    waits: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # listen -> data
    seen: tuple[Seen, ...] = ()
    reason: str | None = None
    branches: Mapping[str, str] = field(default_factory=dict)  # split node -> branch name

    @property
    def ended(self) -> bool:
        return self.state in ENDED


# --- inputs ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reaction:
    message_id: str
    kind: str
    link: int | None = None
    machine: bool = False  # a mail-privacy proxy's open, a link scanner's click
    data: Mapping[str, Any] = field(default_factory=dict)
    profile: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JourneyEvent:
    event_id: str  # the journey event type (already identified by its condition)
    data: Mapping[str, Any] = field(default_factory=dict)
    profile: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TimerFired:
    token: int
    profile: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stop:
    reason: str = "the journey was stopped"


@dataclass(frozen=True)
class Resume:
    """The instance's journey version resumed: what it kept while paused may resolve the
    listen it waits on."""
    profile: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GoalExit:
    """A goal with ``exit`` reached without an event (a profile condition met): the
    instance exits wherever it waits, as an event goal's does."""
    goal_id: str


Input = Reaction | JourneyEvent | TimerFired | Stop | Resume | GoalExit


# --- effects -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Send:
    node: str
    channel: str
    message: str  # the journey's message (authored like a transactional one)
    message_id: str  # stable: a redelivered input sends under the same id


@dataclass(frozen=True)
class SetTimer:
    token: int
    due: datetime


@dataclass(frozen=True)
class CancelTimer:
    token: int


@dataclass(frozen=True)
class UpdateProfile:
    node: str
    values: Mapping[str, Any]
    write_id: str


@dataclass(frozen=True)
class CallHttp:
    node: str
    url: str
    method: str
    timeout_ms: int
    call_id: str  # sent as an idempotency key


@dataclass(frozen=True)
class Step:
    """A step event: what feeds the per-node counts (kinds: entered, actionSent, reaction,
    event, timedOut, transition, split (detail: the branch), heldOut, held (the entry's
    rate), deferred (a send window), goal, finished, stopped, exited, error)."""
    kind: str
    node: str
    detail: str = ""


Effect = Send | SetTimer | CancelTimer | UpdateProfile | CallHttp | Step
