"""The push sender: the shared sending loop (shared.sending) with an HTTP provider."""

from shared.adapters.http_provider import HttpProvider
from shared.adapters.provider_payloads import PushPayload, push_payload
from shared.domain.events import Channel
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import SendRequest
from shared.sending.failover import Failover
from shared.sending.http import HttpHandOver
from shared.sending.spec import SenderSpec
from shared.settings import Settings
from shared.topics import SEND_PUSH_TX


def open_provider(settings: Settings, connections: int = 16) -> Failover:
    """The provider, and the secondary one (if set) that takes over while it fails."""
    secret = settings.push_open_secret.get_secret_value()

    def payload(request: SendRequest, rendered: RenderedMessage) -> PushPayload:
        return push_payload(request, rendered, secret)

    def hand_over(url: str) -> HttpHandOver:
        return HttpHandOver(HttpProvider(url, settings.provider_timeout_s, connections), payload)

    secondary = settings.push_provider_secondary_url
    return Failover.of("push", settings, hand_over(settings.push_provider_url),
                       hand_over(secondary) if secondary else None)


SPEC = SenderSpec(
    stage="sender-push",
    channel=Channel.PUSH,
    topic=SEND_PUSH_TX,
    group="parcours-sender-push",
    provider="provider",
    open_provider=open_provider,
)
