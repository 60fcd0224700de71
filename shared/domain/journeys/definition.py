"""A journey as users write it (JSON): an entry, nodes joined by ``next`` ids, and exit
criteria. Only the shape is checked here (pydantic, bounded); what the graph means —
reachable nodes, loops, reactions to upstream actions — is ``validation``'s business.

    {"id": "seed", "entry": {"type": "audience", "audienceId": "atl-sf-sea", "next": "mail"},
     "nodes": [
       {"id": "mail", "type": "email", "message": "welcome", "next": "push"},
       {"id": "push", "type": "push", "message": "welcome-push", "next": "react"},
       {"id": "react", "type": "listen",
        "branches": [{"reaction": {"action": "mail", "kind": "opened"}, "next": "buy"},
                     {"reaction": {"action": "push", "kind": "pushOpened"}, "next": "buy"}],
        "timeout": {"after": "P1D", "next": "reminder"}},
       ...
       {"id": "done", "type": "end"}]}

Waiting for several things at once is one ``listen`` node: its branches (reactions to
earlier actions, journey events) race with one another and with its timeout, and the first
to happen decides the path, once. Paths join by naming the same ``next``: a journey
instance follows one path at a time, so a join never waits for another path (it cannot
deadlock).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from shared.domain.conditions.model import Condition

MAX_NODES = 50  # activities of a journey (AJO's bound)
MAX_BRANCHES = 10  # of a listen or condition node
MAX_TIMEOUT = timedelta(days=90)
MAX_HTTP_TIMEOUT_MS = 30_000
MAX_GOALS = 5

NodeId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"),
                   Field(description="the node's id, unique in the journey")]
RefId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
ReactionKind = Literal["delivered", "opened", "clicked", "bounced", "complained",
                       "unsubscribed", "pushOpened", "smsDelivered", "failed"]
Channel = Literal["email", "sms", "push"]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- entry -----------------------------------------------------------------------------------

MAX_AUDIENCE_RATE = 1_000_000  # set-based entering (entering.py) passes 50,000/s


class AudienceEntry(_Shape):
    """Profiles of an audience enter at ``rate`` a second, once or every ``every``."""
    type: Literal["audience"]
    audience_id: RefId = Field(alias="audienceId")
    rate: int = Field(1_000, ge=1, le=MAX_AUDIENCE_RATE,
                      description="profiles entering a second (at most: a way to the first"
                      " wait that reads the profile or acts enters a few thousand a second)")
    every: timedelta | None = Field(None, description="re-read the audience this often;"
                                    " absent: once")
    next: NodeId


class EventEntry(_Shape):
    """A profile enters when a profile-based event of ``eventId`` names it."""
    type: Literal["event"]
    event_id: RefId = Field(alias="eventId")
    reentry: bool = Field(False, description="whether a profile that finished may enter"
                          " again")
    min_gap: timedelta = Field(timedelta(0), alias="minGap", ge=timedelta(0),
                               description="least time between two entries of a profile")
    rate: int | None = Field(None, ge=1, le=20_000, description="at most this many profiles"
                             " entering a second; the others are held at the entry (a"
                             " durable timer each) and enter in turn, never dropped")
    next: NodeId


Entry = Annotated[AudienceEntry | EventEntry, Field(discriminator="type")]


# --- nodes -----------------------------------------------------------------------------------

class _Node(_Shape):
    id: NodeId


Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_EVERY_DAY: list[Day] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class SendWindow(_Shape):
    """Send only on ``days`` between ``start`` and ``end`` (local times of one day) in the
    recipient's time zone; a message due outside waits for the next opening."""
    days: list[Day] = Field(default_factory=lambda: list(_EVERY_DAY), min_length=1,
                            max_length=7)
    start: time
    end: time

    @model_validator(mode="after")
    def _within_a_day(self) -> SendWindow:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("give local times without an offset (09:00): the recipient's"
                             " time zone applies")
        if not self.start < self.end:
            raise ValueError("`start` must come before `end` within one day (09:00-18:00)")
        return self


class Action(_Node):
    """Sends the journey's message ``message`` on the node's channel (within ``window``
    when it has one)."""
    type: Channel
    message: RefId = Field(description="a journey message: an event configuration JMS… of"
                                       " the node's channel, published (checked by validation)")
    window: SendWindow | None = Field(None, description="send only on these days and hours"
                                      " of the recipient's time zone; outside, wait")
    next: NodeId


class ReactionWait(_Shape):
    action: NodeId = Field(description="an email, SMS or push action upstream")
    kind: ReactionKind
    link: int | None = Field(None, ge=0, description="for `clicked`: the link's index")
    human_only: bool = Field(True, alias="humanOnly", description="ignore opens and clicks"
                             " flagged as a mail-privacy proxy's or a link scanner's")


class EventWait(_Shape):
    event_id: RefId = Field(alias="eventId", description="a journey event type")
    when: Condition | None = Field(None, description="a further condition on the event's"
                                   " data (paths `event.<field>`)")


class Branch(_Shape):
    reaction: ReactionWait | None = None
    event: EventWait | None = None
    next: NodeId

    @model_validator(mode="after")
    def _one_kind(self) -> Branch:
        if (self.reaction is None) == (self.event is None):
            raise ValueError("a branch waits for exactly one of `reaction` or `event`")
        return self


class Timeout(_Shape):
    after: timedelta = Field(gt=timedelta(0))
    next: NodeId | None = Field(None, description="the timeout path; absent: the instance"
                                " ends `timedOut`")


class Listen(_Node):
    """Waits for the first of its branches to happen, or for its timeout."""
    type: Literal["listen"]
    branches: list[Branch] = Field(min_length=1, max_length=MAX_BRANCHES)
    timeout: Timeout | None = None


class Wait(_Node):
    """Waits a duration, until a moment, or until the date a profile field holds."""
    type: Literal["wait"]
    duration: timedelta | None = Field(None, gt=timedelta(0))
    until: AwareDatetime | None = None
    until_field: str | None = Field(None, alias="untilField",
                                    pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
    next: NodeId

    @model_validator(mode="after")
    def _one_way(self) -> Wait:
        if sum(x is not None for x in (self.duration, self.until, self.until_field)) != 1:
            raise ValueError("a wait has exactly one of `duration`, `until`, `untilField`")
        return self


class Case(_Shape):
    when: Condition
    next: NodeId


class Decision(_Node):
    """Takes the first branch whose condition holds (on the profile, and the data of the
    waits resolved so far: `waits.<node>.<field>`), else ``else``."""
    type: Literal["condition"]
    branches: list[Case] = Field(min_length=1, max_length=MAX_BRANCHES)
    otherwise: NodeId = Field(alias="else")


class SplitBranch(_Shape):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$",
                      description="the branch's label in counts (A, B, control…)")
    weight: int = Field(ge=0, le=100, description="percent of the profiles")
    next: NodeId


class Split(_Node):
    """A random split (experiment): each profile takes one branch with the branches'
    weights (percent, summing to 100), the same branch whenever it passes here in this
    journey version (``split.choose``), recorded on the instance."""
    type: Literal["split"]
    branches: list[SplitBranch] = Field(min_length=2, max_length=MAX_BRANCHES)

    @model_validator(mode="after")
    def _weights(self) -> Split:
        total = sum(b.weight for b in self.branches)
        if total != 100:
            raise ValueError(f"the branches' weights add up to {total}, not 100")
        names = [b.name.lower() for b in self.branches]
        if len(set(names)) != len(names):
            raise ValueError("two branches have the same name (names ignore case)")
        return self


class UpdateProfile(_Node):
    type: Literal["updateProfile"]
    set: dict[str, Any] = Field(min_length=1, max_length=50)
    next: NodeId


class HttpCall(_Node):
    type: Literal["http"]
    url: str = Field(pattern=r"^https?://", max_length=2_000)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    timeout_ms: int = Field(5_000, alias="timeoutMs", ge=100, le=MAX_HTTP_TIMEOUT_MS)
    next: NodeId


class End(_Node):
    type: Literal["end"]


Node = Annotated[Action | Listen | Wait | Decision | Split | UpdateProfile | HttpCall | End,
                 Field(discriminator="type")]


class ExitCriterion(_Shape):
    """A journey event that takes a profile out of the journey wherever it is."""
    event_id: RefId = Field(alias="eventId")


class Goal(_Shape):
    """What the journey is for: a journey event (``eventId``, with an optional ``when`` on
    its data) or a profile condition (``condition``, the audiences' language on the
    profile's paths) within ``within`` of the profile's entry. Reached once per instance —
    recorded with the instance's split branches and the last message it had been sent —
    even after the instance ended; ``exit``: reaching it also takes the profile out of
    the journey wherever it waits."""
    id: NodeId
    event_id: RefId | None = Field(None, alias="eventId", description="a journey event"
                                   " type (or give `condition`)")
    when: Condition | None = Field(None, description="a further condition on the event's"
                                   " data (paths `event.<field>`)")
    condition: Condition | None = Field(None, description="a condition on the profile (its"
                                        " paths, as an audience's), met within `within`"
                                        " (or give `eventId`)")
    within: timedelta = Field(gt=timedelta(0), le=MAX_TIMEOUT,
                              description="from the entry (at most 90 days)")
    exit: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Goal:
        if (self.event_id is None) == (self.condition is None):
            raise ValueError("a goal has exactly one of `eventId` (a journey event) or"
                             " `condition` (on the profile)")
        if self.when is not None and self.event_id is None:
            raise ValueError("`when` tests a goal's journey event: with `condition`, put"
                             " every test in `condition`")
        return self


class JourneyDefinition(_Shape):
    id: RefId
    name: str = Field("", max_length=200)
    entry: Entry
    nodes: list[Node] = Field(min_length=1, max_length=MAX_NODES)
    exit: list[ExitCriterion] = Field(default_factory=list, max_length=10)
    goals: list[Goal] = Field(default_factory=list, max_length=MAX_GOALS)

    @model_validator(mode="after")
    def _goal_ids(self) -> JourneyDefinition:
        ids = [g.id for g in self.goals]
        if len(set(ids)) != len(ids):
            raise ValueError("two goals have the same id")
        return self

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)


def successors(node: Node) -> list[str]:
    """The ids a node can go on to, in the order its branches are tried."""
    if isinstance(node, Listen):
        timeout = [node.timeout.next] if node.timeout and node.timeout.next else []
        return [b.next for b in node.branches] + timeout
    if isinstance(node, Decision):
        return [c.next for c in node.branches] + [node.otherwise]
    if isinstance(node, Split):
        return [b.next for b in node.branches]
    if isinstance(node, End):
        return []
    return [node.next]


def waits(node: Node) -> bool:
    """Whether an instance may stay on the node (a listen or a wait): a loop through one
    costs time, not a busy spin."""
    return isinstance(node, Listen | Wait)


def parse_definition(data: Any) -> JourneyDefinition:
    return JourneyDefinition.model_validate(data)


def wait_until(node: Wait, entered: datetime, profile: dict[str, Any]) -> datetime | None:
    """When a wait entered at ``entered`` ends; None when its profile field holds no date.
    A date, or a date and time without an offset, is read in the profile's time zone
    (``timeZone``; UTC when it has none): a renewal date ends the wait at the profile's
    midnight, not at UTC's."""
    if node.duration is not None:
        return entered + node.duration
    if node.until is not None:
        return node.until
    value: Any = profile
    for key in (node.until_field or "").split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=_zone(profile, entered))


def _zone(profile: dict[str, Any], entered: datetime) -> tzinfo | None:
    name = profile.get("timeZone")
    if isinstance(name, str):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return entered.tzinfo
