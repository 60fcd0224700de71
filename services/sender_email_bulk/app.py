"""The bulk lane of the email sender: the same loop, SMTP hand-over and metrics (the
``priority`` label and the scrape job tell them apart) on the bulk topic, in its own
consumer group, through the bulk relay with a smaller SMTP pool."""

from shared.domain.events import Channel
from shared.sending.smtp import SmtpHandOver
from shared.sending.spec import SenderSpec
from shared.topics import SEND_EMAIL_BULK

SPEC = SenderSpec(
    stage="sender-email-bulk",
    channel=Channel.EMAIL,
    topic=SEND_EMAIL_BULK,
    group="parcours-sender-email-bulk",
    provider="smtp",
    open_provider=SmtpHandOver.open_bulk_guarded,
)
