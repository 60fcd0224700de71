"""What a mail that comes back to a return path says: a bounce (a DSN, RFC 3464) or a
complaint (an ARF report, RFC 5965). Pure: bytes in, a ``Feedback`` (or None) out.

- A DSN (``multipart/report; report-type=delivery-status``) is read with the standard
  library, which parses ``message/delivery-status`` into its header blocks: the first
  recipient block whose ``Action`` is ``failed`` (else ``delayed``) is the bounce. Hard
  when it failed with a 5.x.x ``Status`` (or none); soft when it was delayed or failed
  with a 4.x.x one (the remote gave up on a temporary refusal). The ``Diagnostic-Code``
  (else the Status) is the reply.
- An ARF report (``report-type=feedback-report``) with ``Feedback-Type: abuse`` is a
  complaint; other feedback types (``not-spam``, ``auth-failure``...) are not. Feedback
  loops send it to an address of their own, not to the return path: the quoted original's
  ``Return-Path`` header (its VERP address) then names the message.
- Anything else that still reads as a bounce (qmail's, old Exchange's, plain-text
  reports) goes to flufl.bounce's detectors, which say only permanent or temporary.

``read_feedback`` answers None for a report that is neither a failure nor a complaint (a
DSN saying ``delivered``, a ``not-spam`` report) and raises ``Unreadable`` for a mail
that is no report at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, message_from_string
from email.message import Message
from typing import Literal

from flufl.bounce import all_failures

BounceType = Literal["hard", "soft"]
_STATUS = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})")
_REPLY_CHARS = 1000


class Unreadable(ValueError):
    """Neither a DSN, an ARF report nor a bounce any detector recognises."""


@dataclass(frozen=True)
class Feedback:
    kind: Literal["bounced", "complained"]
    reply: str  # the diagnostic, or the complaint's feedback type and agent
    recipient: str | None = None  # the address the report names, if it names one
    type: BounceType | None = None  # bounces only
    status: str | None = None  # the enhanced status code (RFC 3463), "5.1.1"
    # The Return-Path of the original message the report quotes, if it quotes one: what
    # names the message when the report comes to a feedback-loop address, not to it.
    return_path: str | None = None


def read_feedback(data: bytes) -> Feedback | None:
    message = message_from_bytes(data)
    if message.get_content_type() == "multipart/report":
        report_type = str(message.get_param("report-type") or "").lower()
        if report_type == "delivery-status":
            return _delivery_status(message)
        if report_type == "feedback-report":
            return _feedback_report(message)
    return _detected(message)


def _blocks(message: Message, content_type: str) -> list[Message]:
    """The header blocks of every ``content_type`` part (the parser makes each one a
    Message; a part it could not split has a string payload and no blocks)."""
    return [block for part in message.walk() if part.get_content_type() == content_type
            for block in (part.get_payload() if part.is_multipart() else [])
            if isinstance(block, Message)]


def _delivery_status(message: Message) -> Feedback | None:
    blocks = _blocks(message, "message/delivery-status")
    if not blocks:
        raise Unreadable("a delivery-status report without a delivery-status part")
    # The first block is about the message (Reporting-MTA...), the others each about a
    # recipient: only those have an Action.
    actions = [(_first_word(b.get("Action", "")), b) for b in blocks if b.get("Action")]
    chosen = (next((b for a, b in actions if a in ("failed", "error")), None)
              or next((b for a, b in actions if a == "delayed"), None))
    if chosen is None:
        return None  # delivered, relayed, expanded: not a bounce
    status = _STATUS.match(_unfold(chosen.get("Status", "")))
    code = ".".join(status.groups()) if status else None
    delayed = _first_word(chosen.get("Action", "")) == "delayed"
    kind: BounceType = "soft" if delayed or (code or "5").startswith("4") else "hard"
    reply = (_typed_value(chosen.get("Diagnostic-Code", "")) or code
             or ("delayed" if delayed else "failed"))
    recipient = (_typed_value(chosen.get("Original-Recipient", ""))
                 or _typed_value(chosen.get("Final-Recipient", "")) or None)
    return Feedback("bounced", reply[:_REPLY_CHARS], _address(recipient), kind, code)


def _feedback_report(message: Message) -> Feedback | None:
    blocks = _blocks(message, "message/feedback-report")
    if not blocks:
        raise Unreadable("a feedback report without a feedback-report part")
    report = blocks[0]
    feedback_type = _unfold(report.get("Feedback-Type", "")).lower()
    if feedback_type != "abuse":
        return None
    agent = _unfold(report.get("User-Agent", ""))
    reply = f"abuse report by {agent}" if agent else "abuse report"
    return Feedback("complained", reply[:_REPLY_CHARS],
                    _address(_unfold(report.get("Original-Rcpt-To", ""))),
                    return_path=_quoted_return_path(message))


def _quoted_return_path(message: Message) -> str | None:
    """From the quoted original: a ``message/rfc822`` part (parsed), or its headers as
    ``text/rfc822-headers`` (text)."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822" and part.is_multipart():
            quoted = part.get_payload(0)
        elif kind == "text/rfc822-headers":
            quoted = message_from_string(str(part.get_payload(decode=False)))
        else:
            continue
        if isinstance(quoted, Message) and quoted.get("Return-Path"):
            return _address(_unfold(quoted["Return-Path"]))
    return None


def _detected(message: Message) -> Feedback:
    temporary, permanent = all_failures(message)
    if not (temporary or permanent):
        raise Unreadable("not a delivery or feedback report, and no bounce detector"
                         " recognises it")
    found = sorted(permanent or temporary)[0].decode()
    subject = _unfold(message.get("Subject", "")) or "a bounce without a delivery status"
    return Feedback("bounced", subject[:_REPLY_CHARS], _address(found),
                    "hard" if permanent else "soft")


def _unfold(value: object) -> str:
    return " ".join(str(value).split())


def _first_word(value: object) -> str:
    words = _unfold(value).lower().split()
    return words[0].rstrip(";(") if words else ""


def _typed_value(value: object) -> str:
    """``rfc822; a@example.com`` and ``smtp; 550 5.1.1 ...``: the value after its type."""
    text = _unfold(value)
    kind, semicolon, rest = text.partition(";")
    return rest.strip() if semicolon and " " not in kind.strip() else text


def _address(value: str | None) -> str | None:
    if not value:
        return None
    address = value.strip().strip("<>").strip()
    return address if "@" in address else None
