"""The bulk lane of the SMS sender: the same loop, HTTP hand-over, failover and metrics
(the ``priority`` label and the scrape job tell them apart) on the bulk topic, in its
own consumer group, with fewer provider connections (provider_bulk_connections)."""

from shared.domain.events import Channel
from shared.sending.providers import open_sms_bulk
from shared.sending.spec import SenderSpec
from shared.topics import SEND_SMS_BULK

SPEC = SenderSpec(
    stage="sender-sms-bulk",
    channel=Channel.SMS,
    topic=SEND_SMS_BULK,
    group="parcours-sender-sms-bulk",
    provider="provider",
    open_provider=open_sms_bulk,
)
