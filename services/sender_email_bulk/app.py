"""The bulk lane of the email sender: the same loop, SMTP provider and metrics (the
``priority`` label and the scrape job tell them apart) on the bulk topic, in its own
consumer group, with a smaller SMTP pool."""

from dataclasses import replace

from services.sender_email.app import SPEC as TX_SPEC
from services.sender_email.handlers import SmtpProvider
from shared.topics import SEND_EMAIL_BULK

SPEC = replace(
    TX_SPEC,
    stage="sender-email-bulk",
    topic=SEND_EMAIL_BULK,
    group="parcours-sender-email-bulk",
    open_provider=SmtpProvider.open_bulk,
)
