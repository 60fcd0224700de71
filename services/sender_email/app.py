"""The email sender: the shared sending loop (shared.sending) with SMTP as the provider."""

from shared.domain.events import Channel
from shared.sending.smtp import SmtpHandOver
from shared.sending.spec import SenderSpec
from shared.topics import SEND_EMAIL_TX

SPEC = SenderSpec(
    stage="sender-email",
    channel=Channel.EMAIL,
    topic=SEND_EMAIL_TX,
    group="parcours-sender-email",
    provider="smtp",
    open_provider=SmtpHandOver.open_with_failover,
)
