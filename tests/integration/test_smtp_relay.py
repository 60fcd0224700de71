"""The email senders' relay settings against a real SMTP server (aiosmtpd, as the local
sink, here offering STARTTLS or implicit TLS with a throwaway self-signed certificate, and
requiring AUTH): the SMTP client logs in over TLS and hands the message over; a wrong
password is a transient failure (retried until the credentials are fixed, never a failed
message), and a certificate the client was not told to trust is refused."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.smtp_sink.app import StoringHandler
from services.smtp_sink.store import Mailbox
from shared.adapters.delivery_errors import PermanentFailure, TransientFailure
from shared.adapters.smtp import RelaySecurity, SmtpClient, SmtpPool
from tests.integration.conftest import eventually

USER, PASSWORD = "parcours", "s3cret-relay"
MESSAGE = (b"From: a@example.com\r\nTo: b@example.org\r\nSubject: relay\r\n"
           b"Message-ID: <relay-1@example.com>\r\n\r\nhello\r\n")


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "relay.pem", directory / "relay.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def authenticate(_server: Any, _session: Any, _envelope: Any, _mechanism: str,
                 credentials: Any) -> AuthResult:
    good = (isinstance(credentials, LoginPassword) and credentials.login == USER.encode()
            and credentials.password == PASSWORD.encode())
    return AuthResult(success=good, handled=False)


@asynccontextmanager
async def relay(tmp_path: Path, implicit: bool, mechanisms_off: tuple[str, ...] = ()
                ) -> AsyncIterator[tuple[int, Mailbox, Path]]:
    """A relay on a free port that takes mail only from a client logged in over TLS
    (``mechanisms_off``: AUTH mechanisms it does not offer)."""
    cert_path, key_path = certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    mailbox = Mailbox()
    handler = StoringHandler(mailbox)
    # aiosmtpd counts only STARTTLS as TLS for AUTH; on implicit TLS every byte is.
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler, hostname="localhost", authenticator=authenticate,
                     auth_required=True, auth_require_tls=not implicit,
                     require_starttls=not implicit, tls_context=None if implicit else context,
                     auth_exclude_mechanism=mechanisms_off),
        host="127.0.0.1", port=0, ssl=context if implicit else None)
    try:
        yield server.sockets[0].getsockname()[1], mailbox, cert_path
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # implicit
@pytest.mark.parametrize(("implicit", "mechanisms_off"), [
    (False, ()), (True, ()), (False, ("PLAIN",))], ids=["starttls", "implicit-tls", "login"])
async def test_the_client_logs_in_over_tls_and_hands_the_message_over(
    tmp_path: Path, implicit: bool, mechanisms_off: tuple[str, ...]
) -> None:
    """PLAIN when offered, LOGIN when it is the only mechanism offered."""
    async with relay(tmp_path, implicit, mechanisms_off) as (port, mailbox, ca_file):
        security = RelaySecurity(tls=implicit, starttls=not implicit, username=USER,
                                 password=PASSWORD, ca_file=str(ca_file))
        client = SmtpClient("localhost", port, 5, security)
        try:
            await client.send("b+bounce@bounces.example.com", "b@example.org", MESSAGE)
        finally:
            await client.close()
        [received] = mailbox.list()
        assert received["mail_from"] == "b+bounce@bounces.example.com"
        assert received["subject"] == "relay"


async def test_a_wrong_password_is_transient_and_an_untrusted_certificate_refused(
    tmp_path: Path
) -> None:
    async with relay(tmp_path, implicit=False) as (port, mailbox, ca_file):
        wrong = SmtpClient("localhost", port, 5, RelaySecurity(
            starttls=True, username=USER, password="wrong", ca_file=str(ca_file)))
        with pytest.raises(TransientFailure, match="refused our login"):
            await wrong.send("a@example.com", "b@example.org", MESSAGE)
        untrusted = SmtpClient("localhost", port, 5, RelaySecurity(
            starttls=True, username=USER, password=PASSWORD))  # the system's CAs
        with pytest.raises(TransientFailure, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusted.send("a@example.com", "b@example.org", MESSAGE)
        await wrong.close()
        await untrusted.close()
        assert mailbox.list() == []


class WithoutPipelining(StoringHandler):
    """The sink's handler, offering aiosmtpd's extensions only: no PIPELINING."""

    async def handle_EHLO(self, server: SMTP, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        return responses


@asynccontextmanager
async def plain_sink(pipelining: bool = True, idle_timeout_s: float = 300
                     ) -> AsyncIterator[tuple[int, StoringHandler]]:
    """The sink's own handler on a free port, plain SMTP (no TLS, no AUTH)."""
    handler = (StoringHandler if pipelining else WithoutPipelining)(Mailbox())
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler, hostname="localhost", timeout=idle_timeout_s),
        host="127.0.0.1", port=0)
    try:
        yield server.sockets[0].getsockname()[1], handler
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
async def test_one_connection_carries_refusals_and_messages_in_turn(pipelining: bool) -> None:
    """The client's own MAIL/RCPT/DATA, pipelined or not as the server offers: a refused
    recipient (4xx: later; 5xx: never) leaves the connection ready for the next message
    (RSET), a named sender goes as its bare address, and an address SMTP cannot carry is
    refused before anything is sent."""
    async with plain_sink(pipelining) as (port, handler):
        client = SmtpClient("127.0.0.1", port, 5)
        try:
            handler.refusing["busy@example.org"] = ("450 4.2.1 busy", float("inf"))
            with pytest.raises(TransientFailure, match="450") as later:
                await client.send("a@example.com", "busy@example.org", MESSAGE)
            assert later.value.address_fault
            handler.refusing["gone@example.org"] = ("550 5.1.1 no such user", float("inf"))
            with pytest.raises(PermanentFailure, match="550"):
                await client.send("a@example.com", "gone@example.org", MESSAGE)
            await client.send("Shop <news@example.com>", "b@example.org", MESSAGE)
            with pytest.raises(PermanentFailure, match="cannot be sent over SMTP"):
                await client.send("a@example.com", "zoë@example.org", MESSAGE)
            with pytest.raises(PermanentFailure, match="cannot be sent over SMTP"):
                await client.send("a@example.com", "b c@example.org", MESSAGE)
            await client.send("a@example.com", "c@example.org", MESSAGE)
        finally:
            await client.close()
        received = handler.mailbox.list()
        assert [(m["mail_from"], m["rcpt_to"]) for m in received] == [
            ("news@example.com", ["b@example.org"]), ("a@example.com", ["c@example.org"])]


@asynccontextmanager
async def recording_proxy(port: int) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A TCP relay in front of ``port`` that keeps each chunk the client wrote, as read."""
    chunks: list[bytes] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   keep: bool) -> None:
        while data := await reader.read(65536):
            if keep:
                chunks.append(data)
            writer.write(data)
            await writer.drain()
        writer.close()

    async def serve(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(pipe(client_r, server_w, True), pipe(server_r, client_w, False))

    proxy = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield proxy.sockets[0].getsockname()[1], chunks
    finally:
        proxy.close()


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
async def test_pipelining_sends_the_envelope_in_one_write_when_offered(
    pipelining: bool
) -> None:
    """RFC 2920: MAIL, RCPT and DATA together when the server offers PIPELINING (two round
    trips a message instead of four: README, Benchmarks, P6); one at a time when not. A
    message whose lines start with a period arrives as written (dot-stuffed on the way)."""
    dotted = MESSAGE + b".a line starting with a period\r\n..and two\r\n"
    async with plain_sink(pipelining) as (port, handler), \
            recording_proxy(port) as (proxied, chunks):
        client = SmtpClient("127.0.0.1", proxied, 5)
        try:
            for n in range(3):
                await client.send("a@example.com", f"r{n}@example.org", dotted)
        finally:
            await client.close()
        envelopes = [c for c in chunks if c.startswith(b"MAIL FROM:")]
        together = [c for c in envelopes if b"\r\nRCPT TO:" in c and c.endswith(b"DATA\r\n")]
        assert len(together) == (3 if pipelining else 0), chunks
        assert len(envelopes) == 3
        bodies = [base64.b64decode(m["raw"]) for m in handler.mailbox.list(raw=True)]
        assert len(bodies) == 3
        assert all(b.endswith(b"\r\n.a line starting with a period\r\n..and two\r\n")
                   for b in bodies), bodies


async def test_a_connection_the_server_closed_is_opened_again_without_a_failure() -> None:
    """A relay that drops an idle connection (aiosmtpd's idle timeout: 421, then closed):
    the next message opens a new one instead of failing on the dead one."""
    async with plain_sink(idle_timeout_s=0.3) as (port, handler):
        client = SmtpClient("127.0.0.1", port, 5)
        try:
            await client.send("a@example.com", "first@example.org", MESSAGE)
            connection = client._connection
            assert connection is not None

            async def closed() -> bool:
                return not connection.usable
            await eventually(closed, "the server closing the idle connection", 5)
            await client.send("a@example.com", "second@example.org", MESSAGE)
        finally:
            await client.close()
        assert [m["rcpt_to"] for m in handler.mailbox.list()] == [
            ["first@example.org"], ["second@example.org"]]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
async def test_the_pool_carries_many_messages_and_each_gets_its_own_answer(
    pipelining: bool
) -> None:
    """The sender's pool (two connections, 40 messages at once, some refused at RCPT,
    one at the message's end): every message gets its own reply or failure, whichever
    the connection carrying it. Pipelined, a message's end and the next envelope go in
    one write (one round trip a message)."""
    async with plain_sink(pipelining) as (port, handler), \
            recording_proxy(port) as (proxied, chunks):
        handler.refusing["busy@example.org"] = ("450 4.2.1 busy", float("inf"))
        handler.refusing["gone@example.org"] = ("550 5.1.1 no such user", float("inf"))
        handler.reject_reply, handler.reject_count = "554 5.6.0 refused content", 1
        handler.reject_to = "bad-content@example.org"
        pool = SmtpPool("127.0.0.1", proxied, 5, 2)
        recipients = [("busy" if n % 7 == 3 else "gone" if n % 11 == 5 else f"r{n}")
                      + "@example.org" for n in range(40)]
        recipients[20] = "bad-content@example.org"
        try:
            results = await asyncio.gather(
                *(pool.send("a@example.com", r, MESSAGE) for r in recipients),
                return_exceptions=True)
        finally:
            await pool.close()
        for recipient, result in zip(recipients, results, strict=True):
            if recipient.startswith("busy"):
                assert isinstance(result, TransientFailure) and "450" in str(result)
            elif recipient.startswith(("gone", "bad-content")):
                assert isinstance(result, PermanentFailure), (recipient, result)
            else:
                assert isinstance(result, str) and result.startswith("Message accepted")
        delivered = sorted(r for m in handler.mailbox.list() for r in m["rcpt_to"])
        assert delivered == sorted(r for r in recipients if r[0] == "r")
        following = [c for c in chunks if b"\r\n.\r\nMAIL FROM:" in c]
        assert bool(following) is pipelining, chunks
