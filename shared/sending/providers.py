"""The SMS and push providers as their senders open them, tx and bulk lanes alike: the
HTTP provider, and the secondary one (if set) that takes over while it fails."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from shared.adapters.http_provider import HttpProvider
from shared.adapters.provider_payloads import PushPayload, SmsPayload, push_payload, sms_payload
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import SendRequest
from shared.sending.failover import Failover
from shared.sending.http import HttpHandOver
from shared.settings import Settings

TX_CONNECTIONS = 16


def _failover(channel: str, settings: Settings, primary_url: str, secondary_url: str,
              connections: int,
              payload: Callable[[SendRequest, RenderedMessage], BaseModel]) -> Failover:
    def hand_over(url: str) -> HttpHandOver:
        return HttpHandOver(HttpProvider(url, settings.provider_timeout_s, connections), payload)

    return Failover.of(channel, settings, hand_over(primary_url),
                       hand_over(secondary_url) if secondary_url else None)


def open_sms(settings: Settings, connections: int = TX_CONNECTIONS) -> Failover:
    def payload(request: SendRequest, rendered: RenderedMessage) -> SmsPayload:
        sender_id = settings.sms_sender_ids.get(request.tenant, settings.sms_sender_id)
        return sms_payload(request, rendered, sender_id)

    return _failover("sms", settings, settings.sms_provider_url,
                     settings.sms_provider_secondary_url, connections, payload)


def open_push(settings: Settings, connections: int = TX_CONNECTIONS) -> Failover:
    secret = settings.push_open_secret.get_secret_value()

    def payload(request: SendRequest, rendered: RenderedMessage) -> PushPayload:
        return push_payload(request, rendered, secret)

    return _failover("push", settings, settings.push_provider_url,
                     settings.push_provider_secondary_url, connections, payload)


def open_sms_bulk(settings: Settings) -> Failover:
    return open_sms(settings, settings.provider_bulk_connections)


def open_push_bulk(settings: Settings) -> Failover:
    return open_push(settings, settings.provider_bulk_connections)
