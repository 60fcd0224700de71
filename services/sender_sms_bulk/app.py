"""The bulk lane of the SMS sender: the same loop, HTTP hand-over, failover and metrics
(the ``priority`` label and the scrape job tell them apart) on the bulk topic, in its
own consumer group, with fewer provider connections (provider_bulk_connections)."""

from services.sender_sms.app import open_provider
from shared.domain.events import Channel
from shared.sending.failover import Failover
from shared.sending.spec import SenderSpec
from shared.settings import Settings
from shared.topics import SEND_SMS_BULK


def open_bulk_provider(settings: Settings) -> Failover:
    return open_provider(settings, settings.provider_bulk_connections)


SPEC = SenderSpec(
    stage="sender-sms-bulk",
    channel=Channel.SMS,
    topic=SEND_SMS_BULK,
    group="parcours-sender-sms-bulk",
    provider="provider",
    open_provider=open_bulk_provider,
)
