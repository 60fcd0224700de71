"""SMTP delivery: messages encoded once to bytes, sent over a pool of open connections.

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

import aiosmtplib
import aiosmtplib.email

from shared.adapters.delivery_errors import PermanentFailure, TransientFailure

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


def _classify(
    code: int, text: str, reply: str | None = None
) -> PermanentFailure | TransientFailure:
    """``reply``: the server's text, when ``text`` (the reason given) is not just it."""
    fault = address_fault(code, text if reply is None else reply)
    if 500 <= code < 600:
        return PermanentFailure(f"smtp {code}: {text}", address_fault=fault)
    return TransientFailure(f"smtp {code}: {text}", address_fault=fault)


@dataclass(frozen=True)
class RelaySecurity:
    """How to reach a real relay: implicit TLS (``tls``, smtps) or ``starttls``, and AUTH
    when ``username`` is set (aiosmtplib logs in right after connecting). The default, none
    of it, is the local sink's plain SMTP."""

    tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None  # PEM bundle to check the relay's certificate against

    def __post_init__(self) -> None:
        if self.tls and self.starttls:
            raise ValueError("implicit TLS and STARTTLS exclude each other: choose one")

    def options(self) -> dict[str, object]:
        return {"use_tls": self.tls, "start_tls": self.starttls, "username": self.username,
                "password": self.password, "cert_bundle": self.ca_file}


_PLAIN_ADDRESS = re.compile(r'[^\s<>"\x00-\x1f\x7f]+@[^\s<>"\x00-\x1f\x7f]+')


def _on_command_line(address: str) -> bytes:
    """``<address>`` for MAIL FROM or RCPT TO. A plain address (ours always are: a VERP
    return path, a normalised recipient) is taken as is; anything else ("Name <a@b>", a
    quoted local part) is parsed and checked by aiosmtplib. ValueError: it cannot go on
    an SMTP command line (a character outside ASCII, or one that would end it)."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return b"<" + address.encode("ascii") + b">"
    return aiosmtplib.email.quote_address(address).encode("ascii")


def _size_on_the_wire(message: bytes) -> int:
    """RFC 1870's SIZE: the octets DATA sends, every line ending CRLF."""
    return len(message) + message.count(b"\n") - message.count(b"\r\n")


async def _transaction(smtp: aiosmtplib.SMTP, sender: str, recipient: str, message: bytes
                       ) -> aiosmtplib.SMTPResponse:
    """One message to one recipient: what aiosmtplib's ``sendmail`` does (EHLO if none
    yet, MAIL with SIZE when the server takes it, RCPT, DATA; RSET after a refusal, so the
    connection can carry the next message), through its public commands, without parsing
    each address three times with the email package's ``parseaddr``: that was a tenth of
    the sender's CPU per message (P6)."""
    mail_from, rcpt_to = _on_command_line(sender), _on_command_line(recipient)
    if smtp.is_ehlo_or_helo_needed:
        try:
            await smtp.ehlo()
        except aiosmtplib.SMTPHeloError:
            await smtp.helo()
    options = [b"SIZE=%d" % _size_on_the_wire(message)] if smtp.supports_extension("size") \
        else []
    try:
        response = await smtp.execute_command(b"MAIL", b"FROM:" + mail_from, *options)
        if response.code != 250:
            raise aiosmtplib.SMTPSenderRefused(response.code, response.message, sender)
        response = await smtp.execute_command(b"RCPT", b"TO:" + rcpt_to)
        if response.code not in (250, 251):
            raise aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(
                response.code, response.message, recipient)])
        return await smtp.data(message)
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        with suppress(ConnectionError, aiosmtplib.SMTPResponseException):
            await smtp.rset()
        raise


class SmtpClient:
    """One connection, opened on first use and again after any failure."""

    def __init__(self, host: str, port: int, timeout_s: float,
                 security: RelaySecurity | None = None) -> None:
        self._host, self._port, self._timeout_s = host, port, timeout_s
        self._security = security or RelaySecurity()
        self._smtp: aiosmtplib.SMTP | None = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._smtp is None or not self._smtp.is_connected:
            smtp = aiosmtplib.SMTP(hostname=self._host, port=self._port,
                                   timeout=self._timeout_s,
                                   **self._security.options())  # type: ignore[arg-type]
            await smtp.connect()
            self._smtp = smtp
        return self._smtp

    async def send(self, sender: str, recipient: str, message: bytes) -> str:
        """Hand one encoded message to the server, ``sender`` the envelope's (MAIL FROM);
        returns the server's reply."""
        try:
            smtp = await self._connected()
            reply = await _transaction(smtp, sender, recipient, message)
        except aiosmtplib.SMTPRecipientsRefused as error:
            refused = error.recipients[0]
            raise _classify(refused.code, str(error), refused.message) from error
        except aiosmtplib.SMTPAuthenticationError as error:
            # Our credentials, not the message: retried (with backoff) until they are fixed.
            await self.close()
            raise TransientFailure(f"smtp relay refused our login: {error}") from error
        except aiosmtplib.SMTPSenderRefused as error:  # our MAIL FROM: no address's fault
            failure = _classify(error.code, error.message)
            failure.address_fault = False
            raise failure from error
        except aiosmtplib.SMTPResponseException as error:  # aiosmtplib has sent RSET
            raise _classify(error.code, error.message) from error
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            await self.close()
            raise TransientFailure(f"smtp connection: {error}") from error
        except ValueError as error:
            # An address SMTP cannot carry (a character outside ASCII, or a control
            # character): no retry sends it. The server may hold a half-open transaction.
            await self.close()
            raise PermanentFailure(f"{recipient!r} cannot be sent over SMTP: {error}") from error
        return str(reply.message)

    async def close(self) -> None:
        if self._smtp is not None:
            try:
                await self._smtp.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                self._smtp.close()
            self._smtp = None


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
