"""The SMS sender: the shared sending loop (shared.sending) with an HTTP provider."""

from shared.adapters.http_provider import HttpProvider
from shared.adapters.provider_payloads import SmsPayload, sms_payload
from shared.domain.events import Channel
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import SendRequest
from shared.sending.failover import Failover
from shared.sending.http import HttpHandOver
from shared.sending.spec import SenderSpec
from shared.settings import Settings
from shared.topics import SEND_SMS_TX


def open_provider(settings: Settings, connections: int = 16) -> Failover:
    """The provider, and the secondary one (if set) that takes over while it fails."""

    def payload(request: SendRequest, rendered: RenderedMessage) -> SmsPayload:
        sender_id = settings.sms_sender_ids.get(request.tenant, settings.sms_sender_id)
        return sms_payload(request, rendered, sender_id)

    def hand_over(url: str) -> HttpHandOver:
        return HttpHandOver(HttpProvider(url, settings.provider_timeout_s, connections), payload)

    secondary = settings.sms_provider_secondary_url
    return Failover.of("sms", settings, hand_over(settings.sms_provider_url),
                       hand_over(secondary) if secondary else None)


SPEC = SenderSpec(
    stage="sender-sms",
    channel=Channel.SMS,
    topic=SEND_SMS_TX,
    group="parcours-sender-sms",
    provider="provider",
    open_provider=open_provider,
)
