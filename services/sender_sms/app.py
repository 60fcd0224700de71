"""The SMS sender: the shared sending loop (shared.sending) with an HTTP provider."""

from shared.domain.events import Channel
from shared.sending.providers import open_sms
from shared.sending.spec import SenderSpec
from shared.topics import SEND_SMS_TX

SPEC = SenderSpec(
    stage="sender-sms",
    channel=Channel.SMS,
    topic=SEND_SMS_TX,
    group="parcours-sender-sms",
    provider="provider",
    open_provider=open_sms,
)
