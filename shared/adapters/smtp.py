"""SMTP delivery: messages encoded once to bytes, sent over a pool of open connections
(``smtp_wire``: our own, for PIPELINING).

Failures are sorted so the caller can decide (``shared.adapters.delivery_errors``):
``PermanentFailure`` (5xx: the address or message is refused, or the address is one SMTP
cannot carry: do not retry) and ``TransientFailure`` (4xx, connection lost, timeout: retry
with backoff).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import aiosmtplib.email

from shared.adapters.delivery_errors import PermanentFailure, TransientFailure
from shared.adapters.smtp_wire import SmtpBroken, SmtpConnection, SmtpLoginRefused, SmtpRefusal

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
        try:
            # Before anything is sent: an address SMTP cannot carry is no retry's business.
            mail_from, rcpt_to = _on_command_line(sender), _on_command_line(recipient)
        except ValueError as error:
            raise PermanentFailure(f"{recipient!r} cannot be sent over SMTP: {error}") from error
        try:
            connection = await self._connected()
            reply = await connection.send(mail_from, rcpt_to, message)
        except SmtpRefusal as error:
            failure = _classify(error.code, error.text)
            if error.command == "MAIL":  # our MAIL FROM: no address's fault
                failure.address_fault = False
            raise failure from error
        except SmtpLoginRefused as error:
            # Our credentials, not the message: retried (with backoff) until they are fixed.
            await self.close()
            raise TransientFailure(f"smtp relay refused our login: {error}") from error
        except (SmtpBroken, OSError, TimeoutError) as error:
            await self.close()
            raise TransientFailure(f"smtp connection: {error or type(error).__name__}"
                                   ) from error
        return reply.text

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with suppress(SmtpBroken, OSError, TimeoutError):
                await connection.quit()


class SmtpPool:
    """``size`` connections: messages go out in parallel, each connection one at a time."""

    def __init__(self, host: str, port: int, timeout_s: float, size: int,
                 security: RelaySecurity | None = None) -> None:
        self._idle: asyncio.Queue[SmtpClient] = asyncio.Queue()
        self._clients = [SmtpClient(host, port, timeout_s, security) for _ in range(size)]
        for client in self._clients:
            self._idle.put_nowait(client)

    @asynccontextmanager
    async def client(self) -> AsyncIterator[SmtpClient]:
        client = await self._idle.get()
        try:
            yield client
        finally:
            self._idle.put_nowait(client)

    async def close(self) -> None:
        for client in self._clients:
            await client.close()
