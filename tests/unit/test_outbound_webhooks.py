"""Outbound webhooks' pure parts: the signature a receiver verifies, the retry schedule,
what a subscription's filters let through, and the addresses never called."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema_rs  # schemathesis's
import orjson
import pytest

from shared.domain import outbound_webhooks as wh
from shared.domain import webhook_payloads as payloads
from shared.domain.events import Channel
from shared.domain.outbound_webhooks import Change, Filters
from shared.domain.reactions import Reaction
from shared.domain.status import Status
from shared.domain.webhook_payloads import Notification

ROOT = Path(__file__).resolve().parents[2]

BODY = b'{"id":"n1","type":"status.processed"}'


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    header = wh.signature(["whsec_a"], 1700000000, BODY)
    expected = hmac.new(b"whsec_a", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_signature_verifies_with_the_secret_only() -> None:
    header = wh.signature(["whsec_a"], 1000, BODY)
    assert wh.verify("whsec_a", header, BODY, now=1000)
    assert not wh.verify("whsec_b", header, BODY, now=1000)


@pytest.mark.parametrize("body", [BODY + b" ", BODY.replace(b"processed", b"delivered"), b""])
def test_an_altered_body_fails(body: bytes) -> None:
    assert not wh.verify("whsec_a", wh.signature(["whsec_a"], 1000, BODY), body, now=1000)


def test_an_altered_timestamp_fails() -> None:
    header = wh.signature(["whsec_a"], 1000, BODY).replace("t=1000", "t=1001")
    assert not wh.verify("whsec_a", header, BODY, now=1000)


def test_outside_the_tolerance_fails() -> None:
    header = wh.signature(["whsec_a"], 1000, BODY)
    assert wh.verify("whsec_a", header, BODY, now=1300)
    assert not wh.verify("whsec_a", header, BODY, now=1301)
    assert not wh.verify("whsec_a", header, BODY, now=699)


@pytest.mark.parametrize("header", ["", "v1=abc", "t=x,v1=abc", "t=1000"])
def test_malformed_headers_fail(header: str) -> None:
    assert not wh.verify("whsec_a", header, BODY, now=1000)


def test_during_a_rotation_both_secrets_verify() -> None:
    header = wh.signature(["new", "old"], 1000, BODY)
    assert header.count("v1=") == 2
    assert wh.verify("new", header, BODY, now=1000)
    assert wh.verify("old", header, BODY, now=1000)


def test_retry_delays_double_to_the_cap_within_their_upper_half() -> None:
    assert wh.retry_delay(1, 0.0) == 2.5
    assert wh.retry_delay(1, 0.999) == pytest.approx(5, abs=0.01)
    assert wh.retry_delay(2, 0.0) == 5
    assert wh.retry_delay(4, 1.0) == 40
    assert wh.retry_delay(20, 1.0) == wh.MAX_RETRY_S
    assert wh.retry_delay(10_000, 0.0) == wh.MAX_RETRY_S / 2


def test_retries_go_on_for_a_day_then_stop() -> None:
    at, attempt = 0.0, 1
    while (following := wh.next_attempt_at(at, attempt, 0.5, wh.RETRY_FOR_S)) is not None:
        assert following > at
        at, attempt = following, attempt + 1
    assert at <= wh.RETRY_FOR_S
    assert wh.RETRY_FOR_S - at < wh.MAX_RETRY_S  # the last try is within an hour of the day
    assert 20 < attempt < 50


@pytest.mark.parametrize(("status", "ok"), [(200, True), (204, True), (299, True),
                                            (301, False), (404, False), (500, False),
                                            (None, False)])
def test_only_2xx_succeeds(status: int | None, ok: bool) -> None:
    assert wh.succeeded(status) is ok


PROCESSED = Change("status", "processed", "EVTa", "email")
OPENED = Change("reaction", "opened", "EVTa", "email")
JOURNEY_CLICK = Change("reaction", "clicked", None, "email")


def test_no_filter_takes_everything() -> None:
    assert all(wh.matches(Filters(), c) for c in (PROCESSED, OPENED, JOURNEY_CLICK))


def test_statuses_and_kinds_filter_their_own_type_only() -> None:
    reactions_only = Filters(statuses=frozenset())
    assert not wh.matches(reactions_only, PROCESSED)
    assert wh.matches(reactions_only, OPENED)
    failures = Filters(statuses=frozenset({"deliveryFailed"}), kinds=frozenset({"bounced"}))
    assert not wh.matches(failures, PROCESSED)
    assert not wh.matches(failures, OPENED)
    assert wh.matches(failures, Change("reaction", "bounced", "EVTa", "email"))


def test_event_ids_and_channels_narrow() -> None:
    only_b = Filters(event_ids=frozenset({"EVTb"}))
    assert not wh.matches(only_b, PROCESSED)
    assert not wh.matches(only_b, JOURNEY_CLICK)  # no event id: not EVTb's
    assert wh.matches(Filters(event_ids=frozenset({"EVTa"})), OPENED)
    assert not wh.matches(Filters(channels=frozenset({"sms"})), PROCESSED)
    assert wh.matches(Filters(channels=frozenset({"sms", "email"})), PROCESSED)


def test_filters_from_a_row() -> None:
    row = {"event_ids": ["EVTa"], "channels": None, "statuses": [], "kinds": None}
    assert Filters.of(row) == Filters(frozenset({"EVTa"}), None, frozenset(), None)


def test_ids_are_stable_and_distinct() -> None:
    n = wh.notification_id("acme", "status/k1/processed")
    assert n == wh.notification_id("acme", "status/k1/processed")
    assert n != wh.notification_id("other", "status/k1/processed")
    assert wh.delivery_id("s1", n) != wh.delivery_id("s2", n)


@pytest.mark.parametrize("url", ["https://hooks.example.com/p?q=1", "http://127.0.0.1:9/x",
                                 "https://[2001:db8::1]:8443/"])
def test_urls_taken(url: str) -> None:
    assert wh.url_problem(url) is None


@pytest.mark.parametrize("url", ["ftp://example.com/", "https:///path", "example.com",
                                 "https://user:pw@example.com/", "https://example.com:99999/",
                                 "https://example.com/#frag"])
def test_urls_refused(url: str) -> None:
    assert wh.url_problem(url)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1",
                                     "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1",
                                     "fe80::1", "fc00::1", "::ffff:127.0.0.1", "224.0.0.1"])
def test_private_addresses_are_refused(address: str) -> None:
    assert wh.address_refused(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1"])
def test_public_addresses_are_called(address: str) -> None:
    assert not wh.address_refused(address)


# --- payloads (shared/domain/webhook_payloads.py) -----------------------------------------

def _reaction(kind: str = "opened", origin: dict[str, object] | None = None) -> Reaction:
    return Reaction.model_validate({
        "reactionId": "r1", "tenant": "acme", "messageId": "00000000-0000-0000-0000-000000000001",
        "kind": kind, "at": NOW, "channel": "email", "profileId": "p1", "source": "tracking",
        **({"origin": origin} if origin else {})})


NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_a_status_notification_and_what_the_filters_see() -> None:
    change = payloads.StatusChange(eventId="EVTa", pKey="k1", status=Status.PROCESSED,
                                   messageId="m1", channel=Channel.EMAIL, at=NOW)
    n = payloads.of_status("acme", change, NOW)
    assert n.type == "status.processed"
    assert n.id == wh.notification_id("acme", "status/k1/processed")
    assert payloads.change_of(n) == Change("status", "processed", "EVTa", "email")
    body = orjson.loads(payloads.body(n))
    assert body["data"] == {"eventId": "EVTa", "pKey": "k1", "status": "processed",
                            "messageId": "m1", "channel": "email",
                            "at": "2026-12-03T12:00:00Z"}
    assert Notification.model_validate(body) == n


def test_a_reaction_notification_names_its_event_when_an_event_sent_it() -> None:
    n = payloads.of_reaction(_reaction("clicked", {"kind": "event", "eventId": "EVTa",
                                                   "pKey": "k1"}), NOW)
    assert n.type == "reaction.clicked"
    assert payloads.change_of(n) == Change("reaction", "clicked", "EVTa", "email")
    journey = payloads.of_reaction(_reaction("opened", {
        "kind": "journey", "journeyId": "j", "journeyVersion": 1, "nodeId": "n",
        "instanceId": "i"}), NOW)
    assert payloads.change_of(journey).event_id is None
    assert Notification.model_validate_json(payloads.body(n)) == n


def test_the_body_validates_against_the_committed_schema() -> None:
    schema = jsonschema_rs.Draft202012Validator(
        json.loads((ROOT / "schemas/webhooks/notification.v1.json").read_text()))
    n = payloads.of_reaction(_reaction(), NOW)
    schema.validate(orjson.loads(payloads.body(n)))
    schema.validate(orjson.loads(payloads.body(payloads.ping("acme", "wh_1", "x", NOW))))
    assert not schema.is_valid({**orjson.loads(payloads.body(n)), "type": "nope"})
    assert not schema.is_valid({**orjson.loads(payloads.body(n)), "surprise": 1})


@pytest.mark.parametrize(("value", "tenant"), [
    (b'{"tenant": "acme", "kind": "opened"}', "acme"),
    (b'{"kind": "opened"}', None), (b'{"tenant": 7}', None), (b'[1, 2]', None),
    (b"{not json", None),
])
def test_the_reactions_consumer_reads_the_tenant_before_the_record(
        value: bytes, tenant: str | None) -> None:
    from services.webhooks.sources import tenant_of

    assert tenant_of(value) == tenant
