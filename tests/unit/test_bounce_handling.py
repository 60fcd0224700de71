"""The bounce service's rules without I/O: which address a bounce quarantines, the reaction
it records, and the sink's reports read back as what they say."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from services.bounces.handlers import bounced_address, reaction
from services.smtp_sink.reports import Reporter, build_arf, build_dsn
from shared.adapters.sent_messages import SentMessage
from shared.domain.mail_feedback import Feedback, read_feedback
from shared.domain.reactions import ReactionKind, reaction_id

MESSAGE = "0b5e6a4c-1f7e-4a52-9d35-2f1f3c1b2a10"
PROFILE_MESSAGE = SentMessage(MESSAGE, "t1", "email", "pk1", "p-1", "event", "EVTorder",
                              True, True, "Ann@Example.net")
EVENT_MESSAGE = replace(PROFILE_MESSAGE, profile_id=None, profile_exists=False,
                        profile_email=None)
HARD = Feedback("bounced", "550 5.1.1 no such user", "ann@example.net", "hard", "5.1.1")
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("sent", "feedback", "address"), [
    (PROFILE_MESSAGE, HARD, "Ann@Example.net"),  # the profile's, the DSN agreeing
    (PROFILE_MESSAGE, replace(HARD, recipient=None), "Ann@Example.net"),
    (PROFILE_MESSAGE, replace(HARD, recipient="other@example.net"), None),  # moved since
    (replace(PROFILE_MESSAGE, profile_email=None), HARD, None),
    (EVENT_MESSAGE, HARD, "ann@example.net"),  # no profile: the DSN's recipient
    (EVENT_MESSAGE, replace(HARD, recipient=None), None),
    (replace(PROFILE_MESSAGE, channel="sms"), HARD, None),
])
def test_the_address_a_bounce_quarantines(sent: SentMessage, feedback: Feedback,
                                          address: str | None) -> None:
    assert bounced_address(sent, feedback) == address


def test_a_bounce_of_a_profiles_message_is_keyed_by_the_profile() -> None:
    bounced = reaction(PROFILE_MESSAGE, HARD, NOW)
    assert (bounced.kind, bounced.key, bounced.address, bounced.source) == (
        ReactionKind.BOUNCED, b"p-1", None, "dsn")
    assert bounced.bounce is not None and bounced.bounce.type == "hard"
    assert bounced.origin is not None and bounced.origin.model_dump() == {
        "kind": "event", "eventId": "EVTorder", "pKey": "pk1"}
    assert bounced.reactionId == reaction_id("t1", MESSAGE, ReactionKind.BOUNCED,
                                             bounce="hard")


def test_a_complaint_about_an_event_based_message_is_keyed_by_the_address() -> None:
    complaint = Feedback("complained", "abuse report by ISP", "ann@example.net")
    complained = reaction(EVENT_MESSAGE, complaint, NOW)
    assert (complained.kind, complained.key, complained.bounce, complained.detail) == (
        ReactionKind.COMPLAINED, b"ann@example.net", None, "abuse report by ISP")


def test_a_journeys_message_has_no_origin_to_give() -> None:
    """The contact history keeps the journey's id, not its version and node."""
    sent = replace(PROFILE_MESSAGE, pkey=None, origin_kind="journey", origin_id="J1")
    assert reaction(sent, HARD, NOW).origin is None


ORIGINAL = b"From: shop@example.com\r\nTo: ann@example.net\r\nSubject: boots\r\n\r\nbody\r\n"


def test_the_sinks_reports_read_as_what_they_say() -> None:
    path = "b+0123.abc@bounces.example"
    hard = read_feedback(build_dsn("hard", path, "ann@example.net", ORIGINAL))
    soft = read_feedback(build_dsn("soft", path, "ann@example.net", ORIGINAL))
    complaint = read_feedback(build_arf(path, "ann@example.net", ORIGINAL))
    assert hard is not None and (hard.type, hard.status, hard.recipient) == (
        "hard", "5.1.1", "ann@example.net")
    assert soft is not None and (soft.type, soft.status) == ("soft", "4.2.2")
    assert complaint is not None and (complaint.kind, complaint.recipient,
                                      complaint.return_path) == (
        "complained", "ann@example.net", path)


def test_the_sink_chooses_by_local_part_or_by_what_was_set() -> None:
    reporter = Reporter("127.0.0.1", 1)
    reporter.chosen["ann@example.net"] = "complaint"
    assert [reporter.kind_for(a) for a in (
        "Bounce-Hard-1@example.net", "bounce-soft-x@example.net", "complain-2@example.net",
        "ANN@example.net", "bob@example.net", "x@bounce-hard-domain.example")] == [
        "hard", "soft", "complaint", "complaint", None, None]
