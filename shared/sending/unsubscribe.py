"""The email senders' List-Unsubscribe headers (RFC 2369, RFC 8058 one-click) for a
profile's email that is not purely transactional: its event is configured marketing, or a
journey sends it. The link is the tracking service's ``/u/<token>``.
The mailto address is at the tenant's bounce domain, where the bounce service takes it
(services/bounces/unsubscribe.py)."""

from __future__ import annotations

import logging
from functools import cache

from shared.domain.routing import JourneyOrigin, SendRequest
from shared.domain.tracking_links import Keyring, parse_keyring
from shared.domain.unsubscribe_links import (
    list_unsubscribe_headers,
    mailto,
    unsubscribe_url,
    wants_unsubscribe,
)
from shared.settings import Settings

log = logging.getLogger(__name__)
MAX_URL = 900  # the header on one line, within SMTP's 998 characters


@cache
def _keys(text: str) -> Keyring:
    return parse_keyring(text)


def unsubscribe_headers(settings: Settings, request: SendRequest,
                        bounce_domain: str | None = None) -> list[tuple[str, str]]:
    """``bounce_domain``: where the bounce service receives mail (the return path's);
    with it, a mailto address there follows the link."""
    journey = isinstance(request.origin, JourneyOrigin)
    if not wants_unsubscribe(request.profileId, request.marketing, journey):
        return []
    assert request.profileId is not None
    keys = _keys(settings.unsubscribe_keys.get_secret_value())
    url = unsubscribe_url(settings.tracking_base_url, keys, request.tenant, request.profileId,
                          request.channel.value, request.messageId)
    if len(url) > MAX_URL:  # a profile id of hundreds of bytes: no link rather than no mail
        log.warning("no List-Unsubscribe for message %s: its link would be %d characters",
                    request.messageId, len(url))
        return []
    address = bounce_domain and mailto(keys, request.tenant, request.profileId,
                                       request.channel.value, request.messageId, bounce_domain)
    return list_unsubscribe_headers(url, address or None)
