"""What the engine's input consumer makes of reaction records (``inputs.read``): only a
reaction that an instance could take reaches the lookup of the profile's instances."""

from __future__ import annotations

import orjson
import pytest

from services.journeys.inputs import read
from services.journeys.metrics import INPUTS
from shared.domain.journeys.instance import Reaction
from shared.topics import REACTIONS

MESSAGE = "00000000-0000-0000-0000-000000000001"
JOURNEY = {"kind": "journey", "journeyId": "welcome", "journeyVersion": 2, "nodeId": "mail",
           "instanceId": "i-1"}
TRANSACTIONAL = {"kind": "event", "eventId": "orderShipped", "pKey": "p" * 39}


def record(**fields: object) -> tuple[str, bytes, bytes]:
    value = {"reactionId": "r1", "tenant": "acme", "messageId": MESSAGE, "kind": "opened",
             "at": "2026-12-04T10:00:00+00:00", "channel": "email", "profileId": "ada",
             "source": "tracking", **fields}
    return REACTIONS.name, b"ada", orjson.dumps(value)


@pytest.mark.parametrize("origin", [JOURNEY, None], ids=["a journey's", "origin unknown"])
def test_a_reaction_that_may_be_a_journeys_becomes_an_arrival(origin: object) -> None:
    arrivals, letters = read([record(origin=origin)])
    assert letters == []
    assert [(a.tenant, a.profile_id) for a in arrivals] == [("acme", "ada")]
    assert isinstance(arrivals[0].input, Reaction)
    assert arrivals[0].input.message_id == MESSAGE


def test_a_reaction_to_a_transactional_message_or_without_a_profile_is_no_arrival() -> None:
    arrivals, letters = read([record(origin=TRANSACTIONAL),
                              record(profileId=None, address="ada@example.com")])
    assert arrivals == [] and letters == []


def test_an_unreadable_reaction_is_a_dead_letter_not_an_arrival() -> None:
    arrivals, letters = read([record(kind="teleported")])
    assert arrivals == [] and len(letters) == 1 and "kind" in letters[0][2]


def test_a_transactional_messages_reaction_is_ignored_unvalidated() -> None:
    """Told from its JSON alone: even a record that would not validate goes by (the
    reactions service dead-letters what is not a reaction), counted ``ignored``."""
    ignored = INPUTS.labels("reaction", "ignored")
    before = ignored._value.get()
    arrivals, letters = read([record(origin=TRANSACTIONAL, kind="teleported"),
                              record(origin=TRANSACTIONAL)])
    assert arrivals == [] and letters == []
    assert ignored._value.get() == before + 2


@pytest.mark.parametrize("value", [b"not json", b"[1, 2]", b'"a string"'])
def test_what_is_not_a_json_object_is_a_dead_letter(value: bytes) -> None:
    arrivals, letters = read([(REACTIONS.name, b"k", value)])
    assert arrivals == [] and len(letters) == 1
