"""The push sender: the shared sending loop (shared.sending) with an HTTP provider."""

from shared.domain.events import Channel
from shared.sending.providers import open_push
from shared.sending.spec import SenderSpec
from shared.topics import SEND_PUSH_TX

SPEC = SenderSpec(
    stage="sender-push",
    channel=Channel.PUSH,
    topic=SEND_PUSH_TX,
    group="parcours-sender-push",
    provider="provider",
    open_provider=open_push,
)
