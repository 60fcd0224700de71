"""The tracking service's reaction rows (services/tracking/reaction_rows.py) hold exactly
the record ``Reaction.model_dump_json`` gives, for opens and clicks, human and machine,
event and journey origins, profile or address, and the reason of its trace row as
``reason_of`` gives it; a malformed stored origin is refused."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.tracking.reaction_rows import open_or_click_id, row_of
from shared.adapters.tracking_store import TrackedMessage
from shared.domain.events import Channel
from shared.domain.machine_signals import Verdict
from shared.domain.reactions import (
    Link,
    Reaction,
    ReactionKind,
    reaction_id,
    reason_of,
    trace_reason,
)
from shared.domain.routing import EventOrigin, JourneyOrigin

EVENT = EventOrigin(eventId="EVTcart", pKey="k1").model_dump(mode="json")
JOURNEY = JourneyOrigin(journeyId="JRN1", journeyVersion=2, nodeId="n1",
                        instanceId="i-1").model_dump(mode="json")


def _expected(message: TrackedMessage, kind: ReactionKind, index: int | None, at: datetime,
              verdict: Verdict) -> str:
    return Reaction(
        reactionId=reaction_id(message.tenant, message.message_id, kind, link=index,
                               machine=verdict.machine),
        tenant=message.tenant, messageId=message.message_id, kind=kind, at=at,
        channel=Channel(message.channel), profileId=message.profile_id,
        address=message.address, origin=message.origin,
        link=None if index is None else Link(index=index, url=message.links[index]),
        machine=verdict.machine, machineReason=verdict.reason,
        source="tracking").model_dump_json()


@pytest.mark.parametrize("origin", [EVENT, JOURNEY])
@pytest.mark.parametrize("who", [("p-1", None), (None, "ada@example.com")])
@pytest.mark.parametrize("index", [None, 0, 1])
@pytest.mark.parametrize("verdict", [Verdict(False), Verdict(True, "Gmail's image proxy")])
@pytest.mark.parametrize("at", [datetime(2026, 12, 3, 12, 0, 1, 250, tzinfo=UTC),
                                datetime(2026, 12, 3, 12, tzinfo=UTC)])
def test_the_row_holds_the_reactions_own_record(origin, who, index, verdict, at):
    message = TrackedMessage("t1", "6f1c1d9e-2b1a-4f7e-9a55-0c1d2e3f4a5b", "email", who[0],
                             who[1], origin, ("https://a.example/x?é=1", "https://b.example"))
    kind = ReactionKind.OPENED if index is None else ReactionKind.CLICKED
    row = row_of(message, kind, index, at, verdict)
    assert row.record == _expected(message, kind, index, at, verdict)
    parsed = Reaction.model_validate_json(row.record)
    assert (row.tenant, row.reaction_id, str(row.message_id), row.kind, row.at,
            row.profile_id) == (parsed.tenant, parsed.reactionId, parsed.messageId,
                                parsed.kind.value, parsed.at, parsed.profileId)
    assert row.reason == reason_of(parsed)  # the trace row's, as for any other reaction


def test_a_malformed_origin_or_channel_is_refused():
    message = TrackedMessage("t1", "6f1c1d9e-2b1a-4f7e-9a55-0c1d2e3f4a5b", "email", "p-1",
                             None, {"kind": "event", "eventId": "EVTcart"}, ("https://a",))
    with pytest.raises(ValidationError):
        row_of(message, ReactionKind.OPENED, None, datetime.now(UTC), Verdict(False))
    fax = TrackedMessage("t1", message.message_id, "fax", "p-1", None, EVENT, ())
    with pytest.raises(ValueError):
        row_of(fax, ReactionKind.OPENED, None, datetime.now(UTC), Verdict(False))


@pytest.mark.parametrize("kind", [ReactionKind.OPENED, ReactionKind.CLICKED])
@pytest.mark.parametrize("index", [None, 0, 7, 123])
@pytest.mark.parametrize("machine", [False, True])
@pytest.mark.parametrize("tenant", ["t1", "tenant-é/ü", ""])
def test_the_fast_id_is_the_reactions_own(kind, index, machine, tenant):
    message = "6f1c1d9e-2b1a-4f7e-9a55-0c1d2e3f4a5b"
    assert open_or_click_id(tenant, message, kind, index, machine) == reaction_id(
        tenant, message, kind, link=index, machine=machine)


@pytest.mark.parametrize(("index", "url", "machine", "why", "reason"), [
    (None, None, False, None, None),
    (0, "https://a.example", False, None, "link 0: https://a.example"),
    (None, None, True, None, "machine: flagged"),
    (2, "https://b.example", True, "HEAD request (a link checker)",
     "link 2: https://b.example; machine: HEAD request (a link checker)"),
    (1, "https://c.example/" + "x" * 600, False, None,
     ("link 1: https://c.example/" + "x" * 600)[:500]),
])
def test_a_trace_row_says_the_link_and_the_machine(index, url, machine, why, reason):
    assert trace_reason(index, url, machine, why) == reason
