"""One SMTP connection on asyncio streams, with PIPELINING (RFC 2920) when the server
offers it: MAIL, RCPT and DATA go in one write, the message and its end in the next, two
round trips a message instead of four.

Why not aiosmtplib here: it reads exactly one reply per command it writes (its protocol
drops a reply that arrives while none is awaited), so it cannot pipeline. On this
machine, where the sender's event loop also renders, every round trip waits for the loop
to come round: the four round trips a message, not the CPU, bounded the email sender
(README, Benchmarks, P6). TLS, STARTTLS and AUTH (PLAIN, LOGIN) are the standard
library's ``ssl`` and a few lines each; everything is sent as bytes the caller checked.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import ssl
from dataclasses import dataclass
from functools import cache

_LINE_ENDINGS = re.compile(rb"\r\n|\n|\r")
_MAX_REPLY_LINES = 100  # a reply longer than this is not a server we should talk to


class SmtpBroken(Exception):
    """The conversation cannot go on: a reply that is not SMTP, the server gone, or a
    step of the connection's set-up refused. The connection is closed."""


class SmtpLoginRefused(SmtpBroken):
    """The relay refused our credentials (AUTH)."""


class SmtpRefusal(Exception):
    """A command of a transaction was refused; the connection is ready for the next.
    ``command``: MAIL, RCPT, DATA, or "message" (the reply to the message's end)."""

    def __init__(self, code: int, text: str, command: str) -> None:
        super().__init__(f"{code} {text}")
        self.code, self.text, self.command = code, text, command


@dataclass(frozen=True)
class Reply:
    code: int
    text: str


@cache
def _local_hostname() -> str:
    return socket.getfqdn() or "localhost"


def data_bytes(message: bytes) -> bytes:
    """The message as DATA carries it: every line ending CRLF, a line starting with a
    period doubled (RFC 5321 4.5.2), ending with the end-of-data line. Our encoder's
    lines already end CRLF: counted (in C) rather than rewritten by a regex each time."""
    crlf = message.count(b"\r\n")
    if message.count(b"\n") != crlf or message.count(b"\r") != crlf:
        message = _LINE_ENDINGS.sub(b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    if message.startswith(b"."):
        message = b"." + message
    return message.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def size_on_the_wire(message: bytes) -> int:
    """RFC 1870's SIZE: the octets DATA sends, every line ending CRLF."""
    return len(message) + message.count(b"\n") - message.count(b"\r\n")


_ENVELOPE = (("MAIL", (250,)), ("RCPT", (250, 251)), ("DATA", (354,)))


def _first_refusal(replies: list[Reply]) -> SmtpRefusal | None:
    """The replies to MAIL, RCPT and DATA (fewer when sent one at a time: up to the first
    refusal): the first refused, if one was."""
    for reply, (command, accepted) in zip(replies, _ENVELOPE, strict=False):
        if reply.code not in accepted:
            return SmtpRefusal(reply.code, reply.text, command)
    return None


class SmtpConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout_s: float) -> None:
        self._reader, self._writer, self._timeout_s = reader, writer, timeout_s
        self.extensions: dict[str, str] = {}  # EHLO keyword (lower case) -> its parameters

    @classmethod
    async def open(cls, host: str, port: int, timeout_s: float, *, tls: bool = False,
                   starttls: bool = False, username: str | None = None,
                   password: str | None = None, ca_file: str | None = None
                   ) -> SmtpConnection:
        """Connected, greeted, EHLO said (after STARTTLS again), logged in if asked."""
        context = ssl.create_default_context(cafile=ca_file) if tls or starttls else None
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=context if tls else None,
                server_hostname=host if tls else None)
        connection = cls(reader, writer, timeout_s)
        try:
            await connection._set_up(host, context if starttls else None, username, password)
        except BaseException:
            connection.abort()
            raise
        return connection

    async def _set_up(self, host: str, starttls: ssl.SSLContext | None,
                      username: str | None, password: str | None) -> None:
        async with asyncio.timeout(self._timeout_s):
            greeting = await self._reply()
        if greeting.code != 220:
            raise SmtpBroken(f"the server's greeting: {greeting.code} {greeting.text}")
        await self._hello()
        if starttls is not None:
            if "starttls" not in self.extensions:
                raise SmtpBroken("the relay does not offer STARTTLS")
            await self._expect(b"STARTTLS\r\n", 220, "STARTTLS")
            async with asyncio.timeout(self._timeout_s):
                await self._writer.start_tls(starttls, server_hostname=host)
            await self._hello()  # RFC 3207: what was said before TLS is forgotten
        if username is not None:
            await self._log_in(username, password or "")

    async def _hello(self) -> None:
        reply = await self._command(b"EHLO " + _local_hostname().encode("idna") + b"\r\n")
        if reply.code == 250:
            lines = reply.text.split("\n")[1:]  # the first names the server
            self.extensions = {kw.lower(): rest for kw, _, rest in
                               (line.strip().partition(" ") for line in lines) if kw}
            return
        self.extensions = {}
        await self._expect(b"HELO " + _local_hostname().encode("idna") + b"\r\n", 250, "HELO")

    async def _log_in(self, username: str, password: str) -> None:
        offered = self.extensions.get("auth", "").upper().split()
        user, secret = username.encode(), password.encode()
        if "PLAIN" in offered:
            token = base64.b64encode(b"\0" + user + b"\0" + secret)
            reply = await self._command(b"AUTH PLAIN " + token + b"\r\n")
        elif "LOGIN" in offered:
            reply = await self._command(b"AUTH LOGIN\r\n")
            for part in (user, secret):
                if reply.code != 334:
                    break
                reply = await self._command(base64.b64encode(part) + b"\r\n")
        else:
            raise SmtpLoginRefused(f"the relay offers no login we speak (AUTH {offered})")
        if reply.code != 235:
            raise SmtpLoginRefused(f"{reply.code} {reply.text}")

    @property
    def pipelining(self) -> bool:
        return "pipelining" in self.extensions

    @property
    def usable(self) -> bool:
        """Still open at both ends (a server that closed an idle connection is not)."""
        return not self._writer.is_closing() and not self._reader.at_eof()

    def _envelope_commands(self, mail_from: bytes, rcpt_to: bytes, message: bytes
                           ) -> tuple[bytes, bytes, bytes]:
        """MAIL (with SIZE when offered), RCPT and DATA."""
        size = b" SIZE=%d" % size_on_the_wire(message) if "size" in self.extensions else b""
        return (b"MAIL FROM:" + mail_from + size + b"\r\n", b"RCPT TO:" + rcpt_to + b"\r\n",
                b"DATA\r\n")

    def envelope(self, mail_from: bytes, rcpt_to: bytes, message: bytes) -> bytes:
        """The envelope's commands, as written together (PIPELINING)."""
        return b"".join(self._envelope_commands(mail_from, rcpt_to, message))

    async def send(self, mail_from: bytes, rcpt_to: bytes, message: bytes) -> Reply:
        """One message to one recipient: ``mail_from`` and ``rcpt_to`` are ``<address>``
        as they go on the command line. SmtpRefusal: a command or the message refused
        (the connection reset and ready for the next); SmtpBroken, OSError, TimeoutError:
        the connection is no longer usable."""
        if self.pipelining:
            self.write(self.envelope(mail_from, rcpt_to, message))
            await self.envelope_replies()
        else:  # one at a time, stopping at the first refusal
            replies: list[Reply] = []
            for command in self._envelope_commands(mail_from, rcpt_to, message):
                replies.append(await self._command(command))
                if _first_refusal(replies):
                    break
            await self._refused(replies)
        self.write(data_bytes(message))
        await self.drain()
        return await self.end_reply()

    async def envelope_replies(self) -> None:
        """The replies to an envelope written whole (``envelope``). SmtpRefusal: one of
        its commands was refused, and the connection is reset for the next."""
        async with asyncio.timeout(self._timeout_s):
            replies = [await self._reply(), await self._reply(), await self._reply()]
        await self._refused(replies)

    async def _refused(self, replies: list[Reply]) -> None:
        refusal = _first_refusal(replies)
        if refusal is not None:
            if len(replies) == 3 and replies[2].code == 354:
                # A server that took DATA after refusing the envelope (RFC 2920 3.1):
                # an empty message ends it, then RSET forgets it.
                await self._command(b".\r\n")
            await self._reset()
            raise refusal

    async def end_reply(self) -> Reply:
        """The reply to a message's end. SmtpRefusal: the message was refused (the
        transaction is over; the connection is ready for the next)."""
        async with asyncio.timeout(self._timeout_s):
            reply = await self._reply()
        if reply.code != 250:
            raise SmtpRefusal(reply.code, reply.text, "message")
        return reply

    async def _reset(self) -> None:
        await self._expect(b"RSET\r\n", 250, "RSET")

    async def quit(self) -> None:
        try:
            await self._command(b"QUIT\r\n")
        finally:
            self.abort()

    def abort(self) -> None:
        self._writer.close()

    def write(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise SmtpBroken("the connection is closed")
        self._writer.write(data)

    async def drain(self) -> None:
        async with asyncio.timeout(self._timeout_s):
            await self._writer.drain()

    async def _command(self, command: bytes) -> Reply:
        self.write(command)
        async with asyncio.timeout(self._timeout_s):
            return await self._reply()

    async def _expect(self, command: bytes, code: int, name: str) -> None:
        reply = await self._command(command)
        if reply.code != code:
            raise SmtpBroken(f"{name}: {reply.code} {reply.text}")

    async def _reply(self) -> Reply:
        """One reply, all its lines (``250-...`` continues, ``250 ...`` ends it); the
        caller bounds the wait (one timeout for the replies it awaits together: a timer
        a reply was a few per cent of the sender's CPU)."""
        texts: list[str] = []
        for _ in range(_MAX_REPLY_LINES):
            line = await self._reader.readline()
            if not line.endswith(b"\n"):
                raise SmtpBroken("the server closed the connection")
            code = line[:3]
            if not code.isdigit() or line[3:4] not in (b" ", b"-", b"\r", b"\n"):
                raise SmtpBroken(f"not an SMTP reply: {line[:80]!r}")
            texts.append(line[4:].strip().decode("utf-8", "replace"))
            if line[3:4] != b"-":
                return Reply(int(code), "\n".join(texts))
        raise SmtpBroken(f"a reply of more than {_MAX_REPLY_LINES} lines")
