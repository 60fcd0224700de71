"""The email senders' provider: a rendered email encoded once and handed to the SMTP relay
over a pool of open connections (the HTTP providers' counterpart is shared/sending/http.py)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.adapters.smtp import SmtpPool, encode_email
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import SendRequest
from shared.settings import Settings


@dataclass
class SmtpHandOver:
    smtp: SmtpPool
    mail_from: str

    @classmethod
    def open(cls, settings: Settings) -> SmtpHandOver:
        return cls(SmtpPool(settings.smtp_host, settings.smtp_port, settings.smtp_timeout_s,
                            settings.smtp_connections), settings.mail_from)

    @classmethod
    def open_bulk(cls, settings: Settings) -> SmtpHandOver:
        """Bulk email's own relay and its own, smaller pool of connections."""
        return cls(SmtpPool(settings.smtp_bulk_host, settings.smtp_bulk_port,
                            settings.smtp_timeout_s, settings.smtp_bulk_connections),
                   settings.mail_from)

    async def hand_over(self, request: SendRequest, rendered: RenderedMessage) -> None:
        # SMTP gives no reference worth keeping; the Message-ID is the message id already.
        recipient = request.to["email"]
        message = encode_email(rendered, sender=self.mail_from, recipient=recipient,
                               message_id=request.messageId, domain="parcours.localhost")
        async with self.smtp.client() as client:
            await client.send(self.mail_from, recipient, message)

    async def close(self) -> None:
        await self.smtp.close()
