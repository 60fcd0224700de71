"""The sink's bounce switch, for tests and the demo: a message to a chosen address is
accepted, then a report goes back to its envelope sender (the VERP return path), over
SMTP to the bounce service — what a recipient's server does, asynchronously.

Chosen by the address's local part — ``bounce-hard-…`` (a DSN: failed, 5.1.1),
``bounce-soft-…`` (a DSN: delayed, 4.2.2 mailbox full), ``complain-…`` (an ARF abuse
report, as a mailbox provider's feedback loop sends: to ``fbl@`` the bounce domain,
quoting the message's headers and its Return-Path) — or set for any address over the
HTTP API (``POST /reports?to=…&kind=hard|soft|complaint``, ``DELETE /reports``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Literal, get_args

import aiosmtplib
from prometheus_client import Counter

log = logging.getLogger(__name__)
Kind = Literal["hard", "soft", "complaint"]
KINDS: tuple[Kind, ...] = get_args(Kind)
_PREFIXES: dict[str, Kind] = {"bounce-hard-": "hard", "bounce-soft-": "soft",
                              "complain-": "complaint"}
_HOST = "sink.parcours.localhost"
SENT = Counter("parcours_smtp_sink_reports_total",
               "Reports (DSNs, ARF) the sink sent back to return paths, by kind and outcome",
               ["kind", "outcome"])
_DSN = {
    "hard": ("failed", "5.1.1", "550 5.1.1 <{rcpt}>: no such user here"),
    "soft": ("delayed", "4.2.2", "452 4.2.2 <{rcpt}>: mailbox full, will retry"),
}


def build_dsn(kind: Literal["hard", "soft"], return_path: str, rcpt: str, original: bytes
              ) -> bytes:
    """An RFC 3464 report about ``rcpt``: the original's headers, not its body."""
    action, status, diagnostic = _DSN[kind]
    boundary = uuid.uuid4().hex
    now = format_datetime(datetime.now(UTC))
    explanation = ("could not be delivered: the mailbox does not exist" if kind == "hard"
                   else "is delayed: the mailbox is full; delivery will be retried")
    return "\r\n".join([
        f"From: Mail Delivery System <MAILER-DAEMON@{_HOST}>",
        f"To: <{return_path}>",
        f"Subject: {'Undelivered Mail Returned to Sender' if kind == 'hard' else 'Delayed Mail'}",
        f"Date: {now}", f"Message-ID: <{uuid.uuid4()}@{_HOST}>", "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "", f"--{boundary}", "Content-Type: text/plain; charset=us-ascii", "",
        f"Your message to <{rcpt}> {explanation}.", "", f"--{boundary}",
        "Content-Type: message/delivery-status", "",
        f"Reporting-MTA: dns; {_HOST}", f"Arrival-Date: {now}", "",
        f"Original-Recipient: rfc822;{rcpt}", f"Final-Recipient: rfc822;{rcpt}",
        f"Action: {action}", f"Status: {status}", f"Remote-MTA: dns; {_HOST}",
        f"Diagnostic-Code: smtp; {diagnostic.format(rcpt=rcpt)}", "", f"--{boundary}",
        "Content-Type: text/rfc822-headers", "", _headers(original), f"--{boundary}--", "",
    ]).encode()


def build_arf(return_path: str, rcpt: str, original: bytes) -> bytes:
    """An RFC 5965 abuse report about the message ``rcpt`` marked as spam, quoting its
    headers with the Return-Path the delivering server added (its envelope sender)."""
    boundary = uuid.uuid4().hex
    now = format_datetime(datetime.now(UTC))
    return "\r\n".join([
        f"From: Feedback Loop <fbl@{_HOST}>", f"To: <{feedback_loop(return_path)}>",
        "Subject: FW: abuse report", f"Date: {now}",
        f"Message-ID: <{uuid.uuid4()}@{_HOST}>", "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="{boundary}"',
        "", f"--{boundary}", "Content-Type: text/plain; charset=us-ascii", "",
        "A recipient marked this message as spam.", "", f"--{boundary}",
        "Content-Type: message/feedback-report", "",
        "Feedback-Type: abuse", "User-Agent: parcours-smtp-sink/1.0", "Version: 1",
        f"Original-Rcpt-To: <{rcpt}>", f"Arrival-Date: {now}", "", f"--{boundary}",
        "Content-Type: text/rfc822-headers", "",
        f"Return-Path: <{return_path}>\r\n{_headers(original)}", f"--{boundary}--", "",
    ]).encode()


def feedback_loop(return_path: str) -> str:
    """Where a provider's feedback loop sends complaints: the address registered with it,
    ``fbl@`` the bounce domain (services/bounces), not the return path."""
    return f"fbl@{return_path.rpartition('@')[2]}"


def _headers(original: bytes) -> str:
    head = original.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    return head.decode("ascii", errors="replace").replace("\n", "\r\n") + "\r\n"


async def send_raw(report: bytes, sender: str, rcpt: str, host: str, port: int) -> None:
    """``aiosmtplib.send`` refuses the null sender with raw bytes; ``sendmail`` takes it."""
    async with aiosmtplib.SMTP(hostname=host, port=port, timeout=10) as client:
        await client.sendmail(sender, [rcpt], report)


class Reporter:
    """Sends the chosen reports after the message was accepted, in the background: the
    sink answers 250 first, as a real server does before it finds out."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.chosen: dict[str, Kind] = {}  # set over the HTTP API
        self._tasks: set[asyncio.Task[None]] = set()

    def kind_for(self, rcpt: str) -> Kind | None:
        address = rcpt.lower()
        local = address.rpartition("@")[0]
        return self.chosen.get(address) or next(
            (kind for prefix, kind in _PREFIXES.items() if local.startswith(prefix)), None)

    def after_accepting(self, mail_from: str, rcpt_tos: list[str], data: bytes) -> None:
        if not mail_from:  # a report itself (null sender): never answered
            return
        for rcpt in rcpt_tos:
            kind = self.kind_for(rcpt)
            if kind is not None:
                task = asyncio.create_task(self._send(kind, mail_from, rcpt, data))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _send(self, kind: Kind, return_path: str, rcpt: str, original: bytes) -> None:
        report = (build_arf(return_path, rcpt, original) if kind == "complaint"
                  else build_dsn(kind, return_path, rcpt, original))
        # A DSN goes from the null sender (RFC 5321 §4.5.5), so it is never bounced back.
        sender = f"fbl@{_HOST}" if kind == "complaint" else ""
        to = feedback_loop(return_path) if kind == "complaint" else return_path
        try:
            await send_raw(report, sender, to, self.host, self.port)
            SENT.labels(kind, "sent").inc()
        except (aiosmtplib.SMTPException, OSError) as error:
            SENT.labels(kind, "failed").inc()
            log.warning("the %s report for %s to %s was not taken: %s", kind, rcpt,
                        return_path, error)
