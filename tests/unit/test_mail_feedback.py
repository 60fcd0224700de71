"""Reading what comes back to a return path: DSNs (RFC 3464), ARF complaints (RFC 5965)
and bounces in no standard format, from hand-written samples."""

from __future__ import annotations

import pytest

from shared.domain.mail_feedback import Feedback, Unreadable, read_feedback
from shared.domain.reactions import ReactionKind, reaction_id
from shared.domain.verp import looks_like_return_path, return_path


def dsn(*recipient_blocks: str, report_type: str = "delivery-status") -> bytes:
    blocks = "\r\n\r\n".join(recipient_blocks)
    return f"""From: MAILER-DAEMON@mx.example.net\r
To: b+0123@bounces.example\r
Subject: Undelivered Mail Returned to Sender\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type={report_type};\r
 boundary="B1"\r
\r
--B1\r
Content-Type: text/plain\r
\r
I'm sorry to have to inform you that your message could not be delivered.\r
--B1\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.example.net\r
Arrival-Date: Thu, 3 Dec 2026 10:00:00 +0000\r
\r
{blocks}\r
\r
--B1\r
Content-Type: text/rfc822-headers\r
\r
From: shop@example.com\r
To: ann@example.net\r
Subject: Your order\r
\r
--B1--\r
""".encode()


HARD = """Original-Recipient: rfc822;Ann@Example.net\r
Final-Recipient: rfc822; ann@example.net\r
Action: failed\r
Status: 5.1.1\r
Diagnostic-Code: smtp; 550 5.1.1 <ann@example.net>: Recipient address rejected:\r
 User unknown in local recipient table"""


def test_a_failed_5xx_is_hard_with_the_diagnostic_unfolded() -> None:
    assert read_feedback(dsn(HARD)) == Feedback(
        "bounced", "550 5.1.1 <ann@example.net>: Recipient address rejected: User unknown"
        " in local recipient table", "Ann@Example.net", "hard", "5.1.1")


def test_a_delayed_one_is_soft() -> None:
    found = read_feedback(dsn("Final-Recipient: rfc822; bob@example.net\r\nAction: delayed"
                              "\r\nStatus: 4.2.2\r\nDiagnostic-Code: smtp; 452 4.2.2 Mailbox"
                              " full\r\nWill-Retry-Until: Fri, 4 Dec 2026 10:00:00 +0000"))
    assert found == Feedback("bounced", "452 4.2.2 Mailbox full", "bob@example.net", "soft",
                             "4.2.2")


def test_failed_on_a_temporary_status_is_soft() -> None:
    """The remote gave up retrying a 4xx: the address may well be fine."""
    found = read_feedback(dsn("Final-Recipient: rfc822; c@example.net\r\nAction: failed\r\n"
                              "Status: 4.4.7 (delivery time expired)"))
    assert found is not None and (found.type, found.status, found.reply) == (
        "soft", "4.4.7", "4.4.7")


def test_failed_without_a_status_is_hard() -> None:
    found = read_feedback(dsn("Final-Recipient: rfc822; d@example.net\r\nAction: failed"))
    assert found is not None and (found.type, found.status, found.reply) == (
        "hard", None, "failed")


def test_the_failed_recipient_wins_over_a_delayed_and_a_delivered_one() -> None:
    found = read_feedback(dsn(
        "Final-Recipient: rfc822; ok@example.net\r\nAction: delivered\r\nStatus: 2.0.0",
        "Final-Recipient: rfc822; slow@example.net\r\nAction: delayed\r\nStatus: 4.0.0",
        "Final-Recipient: rfc822; gone@example.net\r\nAction: failed\r\nStatus: 5.1.1"))
    assert found is not None and (found.recipient, found.type) == ("gone@example.net", "hard")


def test_a_success_notice_is_no_bounce() -> None:
    assert read_feedback(dsn("Final-Recipient: rfc822; ok@example.net\r\nAction: delivered"
                             "\r\nStatus: 2.0.0")) is None


def test_a_policy_refusal_keeps_its_status() -> None:
    """Quarantine decides from the status (5.7.1 blames the message, not the address)."""
    found = read_feedback(dsn("Final-Recipient: rfc822; e@example.net\r\nAction: failed\r\n"
                              "Status: 5.7.1\r\nDiagnostic-Code: smtp; 554 5.7.1 spam"))
    assert found is not None and (found.type, found.status) == ("hard", "5.7.1")


def test_a_report_without_its_delivery_status_is_unreadable() -> None:
    broken = b"""Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r
\r
--B\r
Content-Type: text/plain\r
\r
failed\r
--B--\r
"""
    with pytest.raises(Unreadable):
        read_feedback(broken)


def arf(feedback_type: str = "abuse", rcpt: str = "<ann@example.net>") -> bytes:
    return f"""From: feedbackloop@isp.example\r
To: b+0123@bounces.example\r
Subject: FW: Your order\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r
\r
--F\r
Content-Type: text/plain\r
\r
This is an email abuse report for an email message received from IP 192.0.2.1.\r
--F\r
Content-Type: message/feedback-report\r
\r
Feedback-Type: {feedback_type}\r
User-Agent: SomeISP-FBL/1.0\r
Version: 1\r
Original-Rcpt-To: {rcpt}\r
Arrival-Date: Thu, 3 Dec 2026 10:00:00 +0000\r
\r
--F\r
Content-Type: message/rfc822\r
\r
From: shop@example.com\r
To: ann@example.net\r
Subject: Your order\r
\r
Hello\r
--F--\r
""".encode()


def test_an_abuse_report_is_a_complaint() -> None:
    assert read_feedback(arf()) == Feedback("complained", "abuse report by SomeISP-FBL/1.0",
                                            "ann@example.net")


@pytest.mark.parametrize("feedback_type", ["not-spam", "auth-failure", "other"])
def test_other_feedback_types_are_no_complaint(feedback_type: str) -> None:
    assert read_feedback(arf(feedback_type)) is None


QMAIL = b"""From: MAILER-DAEMON@mx.example.net\r
To: b+0123@bounces.example\r
Subject: failure notice\r
\r
Hi. This is the qmail-send program at mx.example.net.\r
I'm afraid I wasn't able to deliver your message to the following addresses.\r
This is a permanent error; I've given up. Sorry it didn't work out.\r
\r
<gone@example.net>:\r
Sorry, no mailbox here by that name. (#5.1.1)\r
\r
--- Below this line is a copy of the message.\r
\r
Subject: Your order\r
"""


def test_a_bounce_in_no_standard_format_goes_to_the_detectors() -> None:
    assert read_feedback(QMAIL) == Feedback("bounced", "failure notice", "gone@example.net",
                                            "hard")


def test_an_ordinary_mail_is_unreadable() -> None:
    with pytest.raises(Unreadable):
        read_feedback(b"From: a@example.net\r\nSubject: hello\r\n\r\nJust saying hi.\r\n")


def test_the_bounce_server_accepts_return_paths_signed_or_not() -> None:
    address = return_path(b"s" * 32, "0b5e6a4c-1f7e-4a52-9d35-2f1f3c1b2a10", "b.example")
    assert looks_like_return_path(address) and looks_like_return_path(f"<{address.upper()}>")
    assert looks_like_return_path(address.replace(address[40], "a" if address[40] != "a"
                                                  else "b"))  # forged: dropped later
    assert not looks_like_return_path("postmaster@b.example")
    assert not looks_like_return_path("b+123.abc@b.example")


def test_a_delay_warning_and_the_failure_after_it_are_two_reactions() -> None:
    ids = {bounce: reaction_id("t", "0b5e6a4c-1f7e-4a52-9d35-2f1f3c1b2a10",
                               ReactionKind.BOUNCED, bounce=bounce)
           for bounce in ("soft", "hard", None)}
    assert len(set(ids.values())) == 3
    assert ids["hard"] == reaction_id("t", "0b5e6a4c-1f7e-4a52-9d35-2f1f3c1b2a10",
                                      ReactionKind.BOUNCED, bounce="hard")


def test_a_complaint_names_the_return_path_of_the_message_it_quotes() -> None:
    quoted = arf().replace(b"From: shop@example.com\r\nTo: ann",
                           b"Return-Path: <b+0123.abc@bounces.example>\r\n"
                           b"From: shop@example.com\r\nTo: ann")
    found = read_feedback(quoted)
    assert found is not None and found.return_path == "b+0123.abc@bounces.example"
    headers_only = quoted.replace(b"Content-Type: message/rfc822",
                                  b"Content-Type: text/rfc822-headers")
    found = read_feedback(headers_only)
    assert found is not None and found.return_path == "b+0123.abc@bounces.example"
    found = read_feedback(arf())
    assert found is not None and found.return_path is None
