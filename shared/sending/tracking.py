"""Tracked links at send time: an HTML email's http(s) links go through the tracking
service's signed click URLs and its open pixel is added; what a pixel or click needs to
record its reaction (the links by index, profile or address, origin) is stored before
the message is handed over, so the recipient can never click before it is there."""

from __future__ import annotations

from functools import lru_cache

import asyncpg

from shared.adapters import tracking_store
from shared.domain.delivery_rules.addresses import recipient_address
from shared.domain.events import Channel
from shared.domain.link_rewriting import rewrite_links
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import SendRequest
from shared.domain.tracking_links import Keyring, click_url, open_url, parse_keyring
from shared.settings import Settings


@lru_cache(maxsize=4)
def _keyring(keys: str) -> Keyring:
    return parse_keyring(keys)


async def tracked(pool: asyncpg.Pool, settings: Settings, request: SendRequest,
                  rendered: RenderedMessage) -> RenderedMessage:
    """The message with tracked links, stored; unchanged when tracking is off or it has
    no HTML part."""
    html = rendered.parts.get("html")
    if not settings.tracking_enabled or rendered.channel is not Channel.EMAIL or not html:
        return rendered
    keys = _keyring(settings.tracking_keys.get_secret_value())
    base, tenant, message = settings.tracking_base_url, request.tenant, request.messageId
    rewritten = rewrite_links(html, lambda i: click_url(base, keys, tenant, message, i),
                              open_url(base, keys, tenant, message))
    address = None if request.profileId else recipient_address(request.channel.value,
                                                               request.to)
    await tracking_store.remember(pool, tracking_store.TrackedMessage(
        tenant, message, request.channel.value, request.profileId, address,
        request.origin.model_dump(), rewritten.links))
    return RenderedMessage(rendered.channel, {**rendered.parts, "html": rewritten.html},
                           rendered.data)
