"""The bulk lane of the push sender: the same loop, HTTP hand-over, failover and metrics
(the ``priority`` label and the scrape job tell them apart) on the bulk topic, in its
own consumer group, with fewer provider connections (provider_bulk_connections)."""

from shared.domain.events import Channel
from shared.sending.providers import open_push_bulk
from shared.sending.spec import SenderSpec
from shared.topics import SEND_PUSH_BULK

SPEC = SenderSpec(
    stage="sender-push-bulk",
    channel=Channel.PUSH,
    topic=SEND_PUSH_BULK,
    group="parcours-sender-push-bulk",
    provider="provider",
    open_provider=open_push_bulk,
)
