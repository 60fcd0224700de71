"""SMTP delivery: messages encoded once to bytes, sent over a pool of open connections
(``smtp_wire``: our own, for PIPELINING).

Failures are sorted so the caller can decide (``shared.adapters.delivery_errors``):
``PermanentFailure`` (5xx: the address or message is refused, or the address is one SMTP
cannot carry: do not retry) and ``TransientFailure`` (4xx, connection lost, timeout: retry
with backoff).
"""

from __future__ import annotations

import asyncio
import logging
import re
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import aiosmtplib.email

from shared.adapters.delivery_errors import PermanentFailure, TransientFailure
from shared.adapters.smtp_wire import (
    SmtpBroken,
    SmtpConnection,
    SmtpLoginRefused,
    SmtpRefusal,
    data_bytes,
)

log = logging.getLogger(__name__)

_ENHANCED = re.compile(r"^\s*[245]\.(\d{1,3})\.(\d{1,3})\b")


def address_fault(code: int, text: str) -> bool:
    """Whether a refusal is about the recipient's address (quarantine counts it). An
    enhanced status code (RFC 3463) says so: X.1.* (addressing) and X.2.* (the mailbox)
    are, except X.1.7 and X.1.8 (our sender address) and X.2.3 (our message too long);
    X.3 to X.7 (the mail system, routing, protocol, content, policy) are not. Without
    one, the reply code: every 5xx but 552 (storage exceeded: the message's size), every
    4xx but 421 (the service closing)."""
    enhanced = _ENHANCED.match(text)
    if enhanced:
        subject, detail = enhanced.groups()
        return ((subject == "1" and detail not in ("7", "8"))
                or (subject == "2" and detail != "3"))
    return code not in (421, 552)


def _classify(code: int, text: str) -> PermanentFailure | TransientFailure:
    fault = address_fault(code, text)
    if 500 <= code < 600:
        return PermanentFailure(f"smtp {code}: {text}", address_fault=fault)
    return TransientFailure(f"smtp {code}: {text}", address_fault=fault)


@dataclass(frozen=True)
class RelaySecurity:
    """How to reach a real relay: implicit TLS (``tls``, smtps) or ``starttls``, and AUTH
    when ``username`` is set (right after connecting, and after STARTTLS). The default,
    none of it, is the local sink's plain SMTP."""

    tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None  # PEM bundle to check the relay's certificate against

    def __post_init__(self) -> None:
        if self.tls and self.starttls:
            raise ValueError("implicit TLS and STARTTLS exclude each other: choose one")

    def options(self) -> dict[str, Any]:
        """What ``SmtpConnection.open`` takes."""
        return {"tls": self.tls, "starttls": self.starttls, "username": self.username,
                "password": self.password, "ca_file": self.ca_file}


_PLAIN_ADDRESS = re.compile(r'[^\s<>"\x00-\x1f\x7f]+@[^\s<>"\x00-\x1f\x7f]+')


def _on_command_line(address: str) -> bytes:
    """``<address>`` for MAIL FROM or RCPT TO. A plain address (ours always are: a VERP
    return path, a normalised recipient) is taken as is; anything else ("Name <a@b>", a
    quoted local part) is parsed and checked by aiosmtplib's helper. ValueError: it
    cannot go on an SMTP command line (a character outside ASCII, or one that would end
    it)."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return b"<" + address.encode("ascii") + b">"
    quoted = aiosmtplib.email.quote_address(address).encode("ascii")
    if re.search(rb"[\x00-\x1f\x7f]", quoted):
        raise ValueError("a control character in the address")
    return quoted


def _addresses(sender: str, recipient: str) -> tuple[bytes, bytes]:
    """Checked before anything is sent: an address SMTP cannot carry is no retry's
    business."""
    try:
        return _on_command_line(sender), _on_command_line(recipient)
    except ValueError as error:
        raise PermanentFailure(f"{recipient!r} cannot be sent over SMTP: {error}") from error


# The connection is no longer usable (a refused login is one of them: SmtpBroken).
_CONNECTION_LOST = (SmtpBroken, OSError, TimeoutError)


def _failure(error: Exception) -> PermanentFailure | TransientFailure:
    """What the caller makes of an SMTP error, the error kept as its cause (the relay's
    breaker reads it: shared.sending.smtp)."""
    failure: PermanentFailure | TransientFailure
    if isinstance(error, SmtpRefusal):
        failure = _classify(error.code, error.text)
        if error.command == "MAIL":  # our MAIL FROM: no address's fault
            failure.address_fault = False
    elif isinstance(error, SmtpLoginRefused):
        # Our credentials, not the message: retried (with backoff) until they are fixed.
        failure = TransientFailure(f"smtp relay refused our login: {error}")
    else:
        failure = TransientFailure(f"smtp connection: {error or type(error).__name__}")
    failure.__cause__ = error
    return failure


@dataclass
class _Job:
    mail_from: bytes
    rcpt_to: bytes
    message: bytes
    done: asyncio.Future[str]  # the server's reply, or the failure

    def settle(self, reply: str | Exception) -> None:
        if self.done.done():  # its caller gave up (cancelled)
            return
        if isinstance(reply, Exception):
            self.done.set_exception(_failure(reply))
        else:
            self.done.set_result(reply)


def _next_waiting(queue: asyncio.Queue[_Job]) -> _Job | None:
    """The next job already queued whose caller still waits, if any (no waiting)."""
    while not queue.empty():
        job = queue.get_nowait()
        if not job.done.done():
            return job
    return None


class SmtpClient:
    """One connection, opened on first use and again after any failure or once the
    server closed it."""

    def __init__(self, host: str, port: int, timeout_s: float,
                 security: RelaySecurity | None = None) -> None:
        self._host, self._port, self._timeout_s = host, port, timeout_s
        self._security = security or RelaySecurity()
        self._connection: SmtpConnection | None = None

    async def _connected(self) -> SmtpConnection:
        if self._connection is None or not self._connection.usable:
            if self._connection is not None:
                self._connection.abort()
            self._connection = None  # a failed open leaves none
            self._connection = await SmtpConnection.open(
                self._host, self._port, self._timeout_s, **self._security.options())
        return self._connection

    async def send(self, sender: str, recipient: str, message: bytes) -> str:
        """Hand one encoded message to the server, ``sender`` the envelope's (MAIL FROM);
        returns the server's reply."""
        mail_from, rcpt_to = _addresses(sender, recipient)
        try:
            connection = await self._connected()
            return (await connection.send(mail_from, rcpt_to, message)).text
        except SmtpRefusal as error:
            raise _failure(error) from error
        except _CONNECTION_LOST as error:
            await self.close()
            raise _failure(error) from error

    async def carry(self, first: _Job, queue: asyncio.Queue[_Job]) -> None:
        """``first``, then while the queue holds more, the next ones. Where the relay
        offers PIPELINING, a message's envelope (MAIL, RCPT, DATA) goes in the write that
        ends the message before it (RFC 2920 lets a group start with a message's
        content): one write and one round trip a message. Every job is settled: its
        reply, or its failure (a lost connection fails the two under way)."""
        under_way = [first]
        try:
            connection = await self._connected()
            if not connection.pipelining:
                try:
                    first.settle((await connection.send(first.mail_from, first.rcpt_to,
                                                        first.message)).text)
                except SmtpRefusal as refusal:
                    first.settle(refusal)
                return

            def announced_next() -> bytes:
                """The next waiting job's envelope, to write; the job is under way."""
                following = _next_waiting(queue)
                if following is None:
                    return b""
                under_way.append(following)
                return connection.envelope(following.mail_from, following.rcpt_to,
                                           following.message)

            connection.write(connection.envelope(first.mail_from, first.rcpt_to,
                                                 first.message))
            while under_way:
                job = under_way[0]
                try:
                    await connection.envelope_replies()
                except SmtpRefusal as refusal:  # reset: nothing else was written after it
                    job.settle(refusal)
                    under_way.pop(0)
                    if envelope := announced_next():
                        connection.write(envelope)
                    continue
                connection.write(data_bytes(job.message) + announced_next())
                await connection.drain()
                try:
                    job.settle((await connection.end_reply()).text)
                except SmtpRefusal as refusal:
                    job.settle(refusal)
                under_way.pop(0)
        except _CONNECTION_LOST as error:
            await self.close()
            for job in under_way:
                job.settle(error)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with suppress(*_CONNECTION_LOST):
                await connection.quit()


class SmtpPool:
    """``size`` connections, each a worker taking messages from one queue: messages go
    out in parallel, each connection carrying one at a time (pipelined, see
    ``SmtpClient.carry``)."""

    def __init__(self, host: str, port: int, timeout_s: float, size: int,
                 security: RelaySecurity | None = None) -> None:
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue()
        self._clients = [SmtpClient(host, port, timeout_s, security) for _ in range(size)]
        self._workers: list[asyncio.Task[None]] = []

    async def send(self, sender: str, recipient: str, message: bytes) -> str:
        """Hand one encoded message over (``SmtpClient.send``'s contract)."""
        mail_from, rcpt_to = _addresses(sender, recipient)
        if not self._workers:  # started in the event loop, on the first message
            self._workers = [asyncio.create_task(self._work(c)) for c in self._clients]
        job = _Job(mail_from, rcpt_to, message, asyncio.get_running_loop().create_future())
        self._jobs.put_nowait(job)
        return await job.done

    async def _work(self, client: SmtpClient) -> None:
        while True:
            job = await self._jobs.get()
            if job.done.done():
                continue
            try:
                await client.carry(job, self._jobs)
            except Exception as error:  # a defect of ours: the job fails, the worker lives
                log.exception("smtp connection worker")
                job.settle(error)

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with suppress(asyncio.CancelledError):
                await worker
        self._workers = []
        while (job := _next_waiting(self._jobs)) is not None:
            job.settle(SmtpBroken("the sender is closing"))
        for client in self._clients:
            await client.close()
