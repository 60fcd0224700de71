"""SMTP protocol (aiosmtpd) and the HTTP read-back API, on one event loop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import Counter

from services.smtp_sink.reports import Kind, Reporter
from services.smtp_sink.store import Mailbox
from shared.operations import operations_router
from shared.settings import Settings
from shared.shutdown import Server, http_config

RECEIVED = Counter("parcours_smtp_sink_received_total", "Messages the sink accepted")


class StoringHandler:
    def __init__(self, mailbox: Mailbox, reporter: Reporter | None = None) -> None:
        self.mailbox = mailbox
        self.reporter = reporter  # sends the DSNs and complaints chosen (reports.py)
        # Failure injection for tests: the next N messages get this reply instead.
        self.reject_reply: str | None = None
        self.reject_count = 0
        self.reject_to: str | None = None  # only messages to this address, if set
        # A mailbox that answers RCPT TO with this reply until then (monotonic): a
        # recipient's server refusing for a while (POST /refuse).
        self.refusing: dict[str, tuple[str, float]] = {}

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        """aiosmtpd's replies, and PIPELINING (RFC 2920), as the relays we stand in for
        offer it (Postfix, Exim, the big providers): aiosmtpd reads each command from
        its stream in turn, so commands sent together are answered in order."""
        session.host_name = hostname  # what aiosmtpd does itself without this hook
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        refusal = self.refusing.get(address.lower())
        if refusal is not None:
            if time.monotonic() < refusal[1]:
                return refusal[0]
            del self.refusing[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        wanted = self.reject_to is None or self.reject_to in (r.lower() for r in envelope.rcpt_tos)
        if self.reject_count > 0 and self.reject_reply and wanted:
            self.reject_count -= 1
            return self.reject_reply
        data = envelope.content if isinstance(envelope.content, bytes) else b""
        self.mailbox.add(envelope.mail_from or "", list(envelope.rcpt_tos), data)
        RECEIVED.inc()
        if self.reporter is not None:
            self.reporter.after_accepting(envelope.mail_from or "", envelope.rcpt_tos, data)
        return "250 Message accepted for delivery"


def http_api(handler: StoringHandler) -> FastAPI:
    api = FastAPI(title="Parcours SMTP sink")

    @api.get("/messages")
    async def messages(to: str | None = None, raw: bool = False) -> list[dict[str, Any]]:
        return handler.mailbox.list(to, raw)

    @api.get("/recipients")
    async def recipients(containing: str) -> list[str]:
        return handler.mailbox.recipients(containing)

    @api.get("/recipients/count")
    async def count_recipients(containing: str, after: int = 0) -> dict[str, int]:
        """Recipients holding ``containing`` in messages after id ``after``; ``last``, the
        id to pass as ``after`` next time."""
        count, last = handler.mailbox.count_after(containing, after)
        return {"count": count, "last": last}

    @api.get("/duplicates")
    async def duplicates() -> dict[str, int]:
        return handler.mailbox.duplicates()

    @api.get("/handed")
    async def handed() -> Response:
        """Every message id handed over since ``since``, with its count: what
        ``parcours reconcile`` asks a sink."""
        return Response(orjson.dumps(handler.mailbox.handed.snapshot("email")),
                        media_type="application/json")

    @api.delete("/messages", status_code=204)
    async def clear() -> None:
        handler.mailbox.clear()

    @api.post("/reject", status_code=204)
    async def reject(reply: str, count: int = 1, to: str | None = None) -> None:
        handler.reject_reply, handler.reject_count = reply, count
        handler.reject_to = to.lower() if to else None

    @api.post("/refuse", status_code=204)
    async def refuse(to: str, seconds: float,
                     reply: str = "450 4.2.1 Mailbox busy, try again later") -> None:
        """RCPT TO ``to`` is answered ``reply`` for the next ``seconds`` (0: no more)."""
        handler.refusing[to.lower()] = (reply, time.monotonic() + seconds)

    @api.post("/reports", status_code=204)
    async def report(to: str, kind: Kind) -> None:
        """Messages to ``to`` are accepted, then bounced (hard, soft) or complained about."""
        if handler.reporter is not None:
            handler.reporter.chosen[to.lower()] = kind

    @api.delete("/reports", status_code=204)
    async def forget_reports() -> None:
        if handler.reporter is not None:
            handler.reporter.chosen.clear()

    api.include_router(operations_router())
    return api


async def serve(settings: Settings, bulk: bool = False, secondary: bool = False) -> None:
    """``bulk``: stand in for the bulk email relay instead of the transactional one;
    ``secondary``: for the second transactional relay (failover)."""
    host, port, http_port = (
        (settings.smtp_bulk_host, settings.smtp_bulk_port, settings.smtp_bulk_sink_http_port)
        if bulk else
        (settings.smtp_secondary_host, settings.smtp_secondary_port,
         settings.smtp_secondary_sink_http_port)
        if secondary else
        (settings.smtp_host, settings.smtp_port, settings.smtp_sink_http_port))
    handler = StoringHandler(Mailbox(), Reporter(settings.bounces_host,
                                                 settings.bounces_smtp_port))
    loop = asyncio.get_running_loop()
    smtp_server = await loop.create_server(
        lambda: SMTP(handler, enable_SMTPUTF8=True, data_size_limit=10 * 1024 * 1024),
        host=host, port=port,
    )
    config = http_config(http_api(handler), host, http_port, log_level="warning")
    async with smtp_server:
        await Server(config).serve()
