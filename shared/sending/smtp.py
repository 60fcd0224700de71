"""The email senders' provider: a rendered email encoded once and handed to the SMTP relay
over a pool of open connections (the HTTP providers' counterpart is shared/sending/http.py).

Each message goes out as its tenant's sender identity says (From, Reply-To; the settings'
mail_from for a tenant with none), DKIM-signed with the active key of its From domain if
there is one, and with a VERP return path as envelope sender, so a bounce names it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from shared.adapters import dkim
from shared.adapters.delivery_errors import TransientFailure
from shared.adapters.mime import encode_email
from shared.adapters.postgres import DB_UNAVAILABLE, create_pool
from shared.adapters.provider_fault import ProviderFault
from shared.adapters.sender_identity_store import Sending, SendingCache
from shared.adapters.smtp import RelaySecurity, SmtpPool
from shared.adapters.smtp_wire import SmtpBroken, SmtpRefusal
from shared.domain import verp
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import SendRequest
from shared.domain.sender_identity import default_identity
from shared.sending.failover import Failover
from shared.sending.unsubscribe import unsubscribe_headers
from shared.settings import Settings

log = logging.getLogger(__name__)


def relay_security(settings: Settings) -> RelaySecurity:
    password = settings.smtp_password and settings.smtp_password.get_secret_value()
    return RelaySecurity(tls=settings.smtp_tls, starttls=settings.smtp_starttls,
                         username=settings.smtp_username, password=password or None,
                         ca_file=settings.smtp_ca_file)


def _vault(settings: Settings) -> dkim.Vault:
    """Made at start: a master key that is not one stops the sender there, not at the
    first message."""
    master = settings.dkim_master_key and settings.dkim_master_key.get_secret_value()
    vault = dkim.Vault(master or None)
    if not vault.ready:
        log.warning("PARCOURS_DKIM_MASTER_KEY is not set: email goes unsigned")
    return vault


def _blames_relay(error: TransientFailure) -> bool:
    """A refusal for now that is the relay's, not one recipient's: a lost connection, a
    timeout, a refused login, 421 (the service is closing). Its breaker counts them."""
    cause = error.__cause__
    if isinstance(cause, SmtpRefusal):
        return cause.code == 421
    return isinstance(cause, (SmtpBroken, OSError, TimeoutError))  # a refused login too


@dataclass
class SmtpHandOver:
    smtp: SmtpPool
    settings: Settings
    vault: dkim.Vault
    # A second relay's hand-over reads identities and keys through the first's cache.
    first: SmtpHandOver | None = None
    # Opened on the first message: providers are made before the event loop runs.
    _sending: SendingCache | None = field(default=None, init=False)
    _opening: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    @classmethod
    def open(cls, settings: Settings) -> SmtpHandOver:
        return cls(SmtpPool(settings.smtp_host, settings.smtp_port, settings.smtp_timeout_s,
                            settings.smtp_connections, relay_security(settings)), settings,
                   _vault(settings))

    @classmethod
    def open_bulk(cls, settings: Settings) -> SmtpHandOver:
        """Bulk email's own relay and its own, smaller pool of connections."""
        return cls(SmtpPool(settings.smtp_bulk_host, settings.smtp_bulk_port,
                            settings.smtp_timeout_s, settings.smtp_bulk_connections,
                            relay_security(settings)), settings, _vault(settings))

    @classmethod
    def open_with_failover(cls, settings: Settings) -> Failover:
        """The relay, and the secondary one (if set) that takes over while it fails."""
        primary = cls.open(settings)
        secondary = settings.smtp_secondary_host and cls(
            SmtpPool(settings.smtp_secondary_host, settings.smtp_secondary_port,
                     settings.smtp_timeout_s, settings.smtp_connections,
                     relay_security(settings)), settings, primary.vault, first=primary)
        return Failover.of("email", settings, primary, secondary or None)

    @classmethod
    def open_bulk_guarded(cls, settings: Settings) -> Failover:
        """The bulk relay behind a breaker, no second relay: marketing volume never
        fails over onto another relay's reputation. Down, its lane waits."""
        return Failover.of("email", settings, cls.open_bulk(settings))

    async def _cache(self) -> SendingCache:
        if self.first is not None:
            return await self.first._cache()
        async with self._opening:
            if self._sending is None:
                settings = self.settings
                pool = await create_pool(settings.pg_dsn, min_size=1, max_size=2)
                cache = SendingCache(pool, settings.config_cache_ttl_s, self.vault,
                                     default_identity(settings.mail_from,
                                                      settings.bounce_domain))
                await cache.listen(settings.pg_dsn)
                self._sending = cache
            return self._sending

    async def _sending_of(self, tenant: str) -> Sending:
        try:
            return await (await self._cache()).get(tenant)
        except DB_UNAVAILABLE as error:  # retried by the caller, like a relay away
            raise TransientFailure(f"loading the sender identity: {error}") from error

    def _return_path(self, message_id: str, bounce_domain: str, fallback: str) -> str:
        try:
            return verp.return_path(self.settings.verp_secret.encode(), message_id,
                                    bounce_domain)
        except ValueError:  # not a message id of ours (a uuid): bounces name no message
            return fallback

    async def hand_over(self, request: SendRequest, rendered: RenderedMessage) -> None:
        # SMTP gives no reference worth keeping; the Message-ID is the message id already.
        sending = await self._sending_of(request.tenant)
        identity = sending.identity
        recipient = request.to["email"]
        message = encode_email(rendered, sender=sending.header_from, recipient=recipient,
                               message_id=request.messageId, domain="parcours.localhost",
                               reply_to=identity.replyTo,
                               headers=unsubscribe_headers(self.settings, request,
                                                           identity.bounceDomain))
        if sending.key is not None:
            message = dkim.signature(message, sending.key) + message
        envelope = self._return_path(request.messageId, identity.bounceDomain,
                                     identity.fromAddress)
        try:
            await self.smtp.send(envelope, recipient, message)
        except TransientFailure as error:
            if not isinstance(error, ProviderFault) and _blames_relay(error):
                raise ProviderFault(str(error), address_fault=error.address_fault) from error
            raise

    async def close(self) -> None:
        await self.smtp.close()
        if self._sending is not None and self.first is None:
            await self._sending.close()
            await self._sending.pool.close()
