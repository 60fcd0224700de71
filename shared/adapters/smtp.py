"""SMTP delivery over one long-lived connection (aiosmtplib).

Failures are sorted so the caller can decide: ``PermanentFailure`` (5xx: the address or
message is refused, do not retry) and ``TransientFailure`` (4xx, connection lost,
timeout: retry with backoff).
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from shared.domain.rendering import RenderedEmail


class PermanentFailure(Exception):
    pass


class TransientFailure(Exception):
    pass


def build_email(
    rendered: RenderedEmail, *, sender: str, recipient: str, message_id: str, domain: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = rendered.subject
    message["Date"] = formatdate(localtime=False)
    # Stable Message-ID: a resend after a crash carries the same id, so receivers and
    # our own sink can recognise it.
    message["Message-ID"] = f"<{message_id}@{domain}>"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


class SmtpClient:
    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self._host, self._port, self._timeout_s = host, port, timeout_s
        self._smtp: aiosmtplib.SMTP | None = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._smtp is None or not self._smtp.is_connected:
            smtp = aiosmtplib.SMTP(
                hostname=self._host, port=self._port, timeout=self._timeout_s, start_tls=False
            )
            await smtp.connect()
            self._smtp = smtp
        return self._smtp

    async def send(self, message: EmailMessage) -> str:
        """Hand one message to the server; returns the server's reply."""
        try:
            smtp = await self._connected()
            _refused, reply = await smtp.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as error:
            raise self._classify(error.recipients[0].code, str(error)) from error
        except aiosmtplib.SMTPResponseException as error:
            raise self._classify(error.code, error.message) from error
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            await self.close()
            raise TransientFailure(f"smtp connection: {error}") from error
        return str(reply)

    @staticmethod
    def _classify(code: int, text: str) -> Exception:
        if 500 <= code < 600:
            return PermanentFailure(f"smtp {code}: {text}")
        return TransientFailure(f"smtp {code}: {text}")

    async def close(self) -> None:
        if self._smtp is not None:
            try:
                await self._smtp.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                self._smtp.close()
            self._smtp = None
