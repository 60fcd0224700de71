"""The bounce service: an SMTP server for the return paths (aiosmtpd) and its operations
routes (``/metrics``, ``/health/ready``) on ``bounces_metrics_port``, on one event loop.
The reactions it records (with their outbox rows, ``reaction_store``) reach
``parcours.reactions.v1`` through the reactions service's relay: no Kafka here.

A mail is refused (550) at RCPT unless addressed to a return path, to the feedback-loop
address (``fbl@`` a bounce domain) or to an unsubscribe address (``unsub+…@``, the mailto
of List-Unsubscribe: services/bounces/unsubscribe.py); one to those is accepted (250) once
handled — even
when it is forged, unknown or unreadable, so the remote does not send it again and again;
it is then only counted and logged. Only PostgreSQL being away (or a fault of ours)
answers 451, so the remote tries later and nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import asyncpg
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, Request
from prometheus_client import Counter

from services.bounces.handlers import FEEDBACK_LOOP, handle, local_part
from services.bounces.unsubscribe import by_mail
from shared.adapters.postgres import DB_UNAVAILABLE, create_pool
from shared.domain.tracking_links import Keyring, parse_keyring
from shared.domain.unsubscribe_links import looks_like_mailto
from shared.domain.verp import looks_like_return_path
from shared.operations import operations_router
from shared.resilience import retry_forever
from shared.settings import Settings
from shared.shutdown import Server, http_config

log = logging.getLogger(__name__)
RECEIVED = Counter("parcours_bounces_received_total",
                   "Mails to return paths and unsubscribe addresses, by what became of them"
                   " (hard, soft, complained, unsubscribed, repeated, ignored, forged,"
                   " unknown, unreadable)", ["outcome"])
REFUSED = Counter("parcours_bounces_refused_total",
                  "Recipients refused at RCPT (not a return path)")


class ReturnPathHandler:
    def __init__(self, pool: asyncpg.Pool, secret: bytes,
                 unsubscribe_keys: Keyring | None = None) -> None:
        self.pool = pool
        self.secret = secret
        self.unsubscribe_keys = unsubscribe_keys  # None: unsubscribe addresses refused

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        local = address.rpartition("@")[0].lower()
        unsubscribing = self.unsubscribe_keys is not None and looks_like_mailto(address)
        if not (looks_like_return_path(address) or local == FEEDBACK_LOOP or unsubscribing):
            REFUSED.inc()
            return "550 5.1.1 not a return path of this server"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.content if isinstance(envelope.content, bytes) else b""
        try:
            for rcpt in envelope.rcpt_tos:
                if self.unsubscribe_keys is not None and looks_like_mailto(rcpt):
                    RECEIVED.labels(await by_mail(self.pool, self.unsubscribe_keys, rcpt)).inc()
                    continue
                outcome = await handle(self.pool, self.secret, rcpt, data, datetime.now(UTC))
                RECEIVED.labels(outcome.value).inc()
        except DB_UNAVAILABLE as error:
            log.warning("PostgreSQL unavailable (%s): the remote will send it again", error)
            return "451 4.3.0 try again later"
        except Exception:  # a fault of ours: the remote keeps it and tries again later
            log.exception("handling a report to %s failed",
                          [local_part(rcpt) for rcpt in envelope.rcpt_tos])
            return "451 4.3.0 try again later"
        return "250 OK"


def operations(pool: asyncpg.Pool) -> FastAPI:
    async def ready(_request: Request) -> dict[str, bool]:
        try:
            postgres = await pool.fetchval("SELECT true", timeout=2) is True
        except DB_UNAVAILABLE:
            postgres = False
        return {"postgres": postgres}

    api = FastAPI(title="Parcours bounces", openapi_url=None)
    api.include_router(operations_router(ready))
    return api


async def serve(settings: Settings) -> None:
    pool = await retry_forever(lambda: create_pool(settings.pg_dsn), "connecting to PostgreSQL",
                               DB_UNAVAILABLE)
    handler = ReturnPathHandler(pool, settings.verp_secret.encode(), parse_keyring(
        settings.unsubscribe_keys.get_secret_value()))
    smtp_server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler, enable_SMTPUTF8=True, data_size_limit=10 * 1024 * 1024),
        host=settings.bounces_host, port=settings.bounces_smtp_port)
    config = http_config(operations(pool), settings.metrics_host,
                         settings.bounces_metrics_port, log_level="warning")
    try:
        async with smtp_server:
            await Server(config).serve()
    finally:
        await pool.close()
