"""The tracking handler with a fake recorder: it needs the one statement that looks a
message up and records the reaction, never Kafka, so a redirect waits for nothing but the
outbox; what it refuses records nothing; tracking off leaves a message as rendered. (The
statement itself, on PostgreSQL: tests/integration/test_tracking_hits.py.)"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from services.tracking.app import location
from services.tracking.handlers import Answer, Request, react
from shared.adapters.tracking_store import Hit, Recorded, TrackedMessage
from shared.domain.events import Channel
from shared.domain.reactions import Reaction
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import SendRequest
from shared.domain.tracking_links import parse_keyring, sign
from shared.sending.tracking import tracked
from shared.settings import Settings

KEYS = parse_keyring("k1:unit-test-secret-0123456789")
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
MESSAGE = TrackedMessage("acme", str(uuid.uuid4()), "email", "p-1", None,
                         {"kind": "event", "eventId": "EVTx", "pKey": "k"},
                         ("https://shop.example/a", "https://shop.example/b"),
                         NOW - timedelta(minutes=5))
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"


class Outbox:
    """The statement's answers for MESSAGE, sent long enough ago: a person's reaction
    unless the request's own signals make it a machine's."""

    def __init__(self) -> None:
        self.reactions: dict[str, Reaction] = {}

    async def record(self, hit: Hit) -> Recorded:
        if (hit.tenant, hit.message_id) != (MESSAGE.tenant, MESSAGE.message_id) or (
                hit.index is not None and hit.index >= len(MESSAGE.links)):
            return Recorded("unknown")
        rid, machine, reason = hit.late_id, hit.late_machine, hit.late_reason
        url = None if hit.index is None else MESSAGE.links[hit.index]
        new = rid not in self.reactions
        self.reactions.setdefault(rid, Reaction(
            reactionId=rid, tenant=hit.tenant, messageId=hit.message_id, kind=hit.kind,
            at=hit.at, channel=MESSAGE.channel, profileId=MESSAGE.profile_id,
            origin=MESSAGE.origin, link=None if url is None else {"index": hit.index,
                                                                  "url": url},
            machine=machine, machineReason=reason, source="tracking"))
        return Recorded(None, url, rid, new)


def hit(token: str, kind: str = "click", method: str = "GET", agent: str = BROWSER) -> Request:
    return Request(kind, token, method, agent, NOW)  # type: ignore[arg-type]


def run(request: Request, outbox: Outbox) -> Answer:
    return asyncio.run(react(request, KEYS, outbox.record))


def test_a_click_redirects_to_the_stored_link_once_recorded() -> None:
    outbox = Outbox()
    token = sign(KEYS, "click", "acme", MESSAGE.message_id, 1)
    assert run(hit(token), outbox) == Answer("recorded", "https://shop.example/b")
    assert run(hit(token), outbox) == Answer("repeated", "https://shop.example/b")
    [reaction] = outbox.reactions.values()
    assert (reaction.kind, reaction.link and reaction.link.url, reaction.machine) == (
        "clicked", "https://shop.example/b", False)
    assert reaction.profileId == "p-1" and reaction.origin is not None


def test_refused_and_unknown_record_nothing_and_redirect_nowhere() -> None:
    outbox = Outbox()
    good = sign(KEYS, "click", "acme", MESSAGE.message_id, 0)
    for request in (hit(good[:-3] + "AAA"), hit(good, kind="open"),
                    hit(sign(KEYS, "click", "acme", MESSAGE.message_id, 2)),
                    hit(sign(KEYS, "click", "acme", str(uuid.uuid4()), 0)),
                    hit(sign(KEYS, "click", "other", MESSAGE.message_id, 0))):
        answer = run(request, outbox)
        assert not answer.found and answer.url is None
    assert outbox.reactions == {}


def test_an_expired_message_is_expired_and_redirects_nowhere() -> None:
    class Old(Outbox):
        async def record(self, hit: Hit) -> Recorded:
            return Recorded("expired")

    token = sign(KEYS, "click", "acme", MESSAGE.message_id, 0)
    answer = run(hit(token), Old())
    assert answer == Answer("expired") and not answer.found


def test_a_hit_carries_a_persons_and_a_scanners_reaction_unless_its_own_signals_decide(
) -> None:
    captured: list[Hit] = []

    class Seen(Outbox):
        async def record(self, hit: Hit) -> Recorded:
            captured.append(hit)
            return await super().record(hit)

    outbox = Seen()
    token = sign(KEYS, "click", "acme", MESSAGE.message_id, 1)
    run(hit(token), outbox)
    run(hit(token, agent="GoogleImageProxy"), outbox)
    person, proxy = captured
    assert (person.late_machine, person.early_machine) == (False, True)  # the timing decides
    assert person.early_mark == "machine: within 2 s of sending (a link scanner)"
    assert person.late_id != person.early_id and person.late_mark is None
    assert proxy[5:9] == proxy[9:] and proxy.late_machine  # the user agent decides


def test_a_machine_is_recorded_apart() -> None:
    outbox = Outbox()
    token = sign(KEYS, "open", "acme", MESSAGE.message_id)
    assert run(hit(token, "open", agent="GoogleImageProxy"), outbox).outcome == "recorded"
    assert run(hit(token, "open"), outbox).outcome == "recorded"
    assert sorted(r.machine for r in outbox.reactions.values()) == [False, True]


def test_postgresql_away_is_unavailable_and_records_nothing() -> None:
    class Away(Outbox):
        async def record(self, hit: Hit) -> Recorded:
            raise OSError("connection refused")

    outbox = Away()
    token = sign(KEYS, "click", "acme", MESSAGE.message_id, 0)
    answer = run(hit(token), outbox)
    assert answer == Answer("unavailable") and not answer.found and outbox.reactions == {}


def test_tracking_off_leaves_the_message_as_rendered() -> None:
    rendered = RenderedMessage(Channel.EMAIL, {"html": '<a href="https://x.example">x</a>'}, {})
    request = SendRequest.model_validate({
        "messageId": MESSAGE.message_id, "tenant": "acme", "channel": "email",
        "origin": {"kind": "event", "eventId": "EVTx", "pKey": "k"},
        "to": {"email": "a@example.com"}, "ctx": {}, "acceptedAt": 0})
    off = Settings(tracking_enabled=False)
    assert asyncio.run(tracked(None, off, request, rendered)) is rendered  # type: ignore[arg-type]


def test_the_location_header_keeps_the_url_and_cannot_be_split() -> None:
    url = "https://shop.example/a?b=1&c=%20d#top"
    assert location(url) == url.encode()
    assert location("https://shop.example/é ü\r\nSet-Cookie: x=1") == (
        b"https://shop.example/%C3%A9%20%C3%BC%0D%0ASet-Cookie:%20x=1")
