"""The email a sender hands to SMTP, read back the way mail readers read it."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email import policy

import pytest

from shared.adapters.mime import encode_email
from shared.domain.events import Channel
from shared.domain.rendering import RenderedMessage

SUBJECTS = [
    "Ada, votre panier vous attend : chaussures de randonnée, bâtons et gourde isotherme "
    "à 12,50 €",
    "Grüße",
    "Your order A-1042 has shipped and will reach you on Thursday between nine and noon, "
    "signed for",
    "注文の品物は木曜日に届きます。ご不明な点があればお問い合わせください。" * 2,
]


def encoded(subject: str) -> bytes:
    rendered = RenderedMessage(Channel.EMAIL, {"subject": subject, "text": "t",
                                               "html": "<p>h</p>"}, {})
    return encode_email(rendered, sender="Parcours <no-reply@example.com>",
                        recipient="a@example.com", message_id="m1", domain="example.com")


@pytest.mark.parametrize("subject", SUBJECTS)
def test_a_subject_reads_back_exactly_without_a_leading_space(subject: str) -> None:
    raw = encoded(subject)
    assert email.message_from_bytes(raw, policy=policy.default)["Subject"] == subject
    head = raw.split(b"\n\n", 1)[0].replace(b"\r\n", b"\n")
    subject_line = next(line for line in head.split(b"\n") if line.startswith(b"Subject:"))
    assert subject_line.strip() != b"Subject:"  # not folded right after the name
    assert all(len(line) <= 78 for line in head.split(b"\n"))


def test_the_date_is_utc_with_a_plus_zero_offset() -> None:
    raw = encoded("Hello")
    date = email.message_from_bytes(raw, policy=policy.default)["Date"]
    assert date.endswith(" +0000"), date
    sent = date.datetime
    assert sent.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - sent) < timedelta(seconds=5)
