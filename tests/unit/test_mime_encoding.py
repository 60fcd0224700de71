"""The directly written MIME (shared.adapters.mime) reads back exactly as the email
package's own encoding of the same message: every header, decoded, and every part."""

from __future__ import annotations

import email
from email import policy
from email.charset import QP, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, parseaddr

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.adapters.mime import encode_email
from shared.domain.events import Channel
from shared.domain.rendering import RenderedMessage

_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


def _by_the_email_package(rendered: RenderedMessage, sender: str, recipient: str,
                          reply_to: str | None) -> bytes:
    """The encoding the sender used before (the standard library's generator)."""
    message = MIMEMultipart("alternative")
    message["From"] = formataddr(parseaddr(sender), charset="utf-8")
    message["To"] = recipient
    if reply_to:
        message["Reply-To"] = reply_to
    subject = rendered.parts["subject"]
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8",
                                                                  header_name="Subject")
    message["Message-ID"] = "<m1@example.com>"
    message.attach(MIMEText(rendered.parts["text"], "plain", _UTF8_QP))
    message.attach(MIMEText(rendered.parts["html"], "html", _UTF8_QP))
    return message.as_bytes()


def _read(raw: bytes) -> tuple[dict[str, str], list[tuple[str, str]]]:
    message = email.message_from_bytes(raw, policy=policy.default)
    headers = {name: str(message[name]) for name in ("From", "To", "Reply-To", "Subject",
                                                      "Message-ID")
               if message[name] is not None}
    parts = [(part.get_content_type(), part.get_content())
             for part in message.iter_parts()]  # type: ignore[attr-defined]
    return headers, parts


# Text as templates render it: any characters but the ones no mail body keeps (NUL, lone
# CR, which readers turn into line breaks).
_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"),
                max_size=400)
_SUBJECT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
                   min_size=1, max_size=160).filter(lambda s: s.strip() == s)
_NAME = st.sampled_from(["Parcours", "Équipe Réservations", "Shop, Inc.", "注文", ""])


@settings(max_examples=300, deadline=None)
@given(subject=_SUBJECT, text=_TEXT, html=_TEXT, name=_NAME, reply=st.booleans())
def test_reads_back_as_the_email_package_encoding_does(
        subject: str, text: str, html: str, name: str, reply: bool) -> None:
    rendered = RenderedMessage(Channel.EMAIL, {"subject": subject, "text": text,
                                               "html": html}, {})
    sender = formataddr((name, "no-reply@example.com"))
    reply_to = "Support <help@example.com>" if reply else None
    ours = encode_email(rendered, sender=sender, recipient="a@example.org",
                        message_id="m1", domain="example.com", reply_to=reply_to)
    theirs = _by_the_email_package(rendered, sender, "a@example.org", reply_to)
    assert _read(ours) == _read(theirs)
    assert all(len(line) <= 78 for line in ours.split(b"\n\n", 1)[0].split(b"\n"))


def test_a_lone_dot_line_and_trailing_spaces_survive() -> None:
    rendered = RenderedMessage(Channel.EMAIL, {"subject": "s", "text": "a\n.\nb  \nend\t",
                                               "html": "<p>=3D</p>"}, {})
    raw = encode_email(rendered, sender="a@example.com", recipient="b@example.org",
                       message_id="m1", domain="example.com")
    assert b"\n.\n" not in raw  # =2E: nothing for SMTP's dot to mistake
    assert _read(raw)[1] == [("text/plain", "a\n.\nb  \nend\t"), ("text/html", "<p>=3D</p>")]


def test_the_boundary_differs_per_message_and_is_not_in_the_bodies() -> None:
    rendered = RenderedMessage(Channel.EMAIL, {"subject": "s", "text": "--=_", "html": "=_"},
                               {})
    one, two = (encode_email(rendered, sender="a@example.com", recipient="b@example.org",
                             message_id="m1", domain="example.com") for _ in range(2))
    boundary = email.message_from_bytes(one).get_boundary()
    assert boundary and boundary != email.message_from_bytes(two).get_boundary()
    assert one.count(boundary.encode()) == 4  # the header, two delimiters, the closing one
