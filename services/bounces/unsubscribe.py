"""Mail to an unsubscribe address (RFC 2369 ``List-Unsubscribe: <mailto:…>``): whatever
it says, its recipient address alone unsubscribes — the message it names, signed for that
message's tenant, profile and channel (shared/domain/unsubscribe_links.py) — as the
one-click link does (shared/adapters/unsubscribe_store.py)."""

from __future__ import annotations

import logging

import asyncpg

from shared.adapters import sent_messages, unsubscribe_store
from shared.domain.tracking_links import Keyring
from shared.domain.unsubscribe_links import message_of_mailto, named_by

log = logging.getLogger(__name__)


async def by_mail(pool: asyncpg.Pool, keys: Keyring, rcpt: str) -> str:
    """The outcome: unsubscribed, repeated (already recorded for that message), forged,
    unknown (a message the ledger no longer knows, or whose profile is gone)."""
    found = message_of_mailto(rcpt)
    if found is None:
        return "forged"
    sent = await sent_messages.find(pool, found[1])
    if sent is None or sent.profile_id is None or not sent.profile_exists:
        log.warning("an unsubscribe mail about message %s, unknown or not a profile's",
                    found[1])
        return "unknown"
    named = named_by(keys, rcpt, sent.tenant, sent.profile_id, sent.channel)
    if named is None:
        log.warning("an unsubscribe mail about message %s, whose signature is not ours:"
                    " dropped", found[1])
        return "forged"
    new = await unsubscribe_store.one_click(pool, named, f"mailto: {named.channel} marketing")
    return "unsubscribed" if new else "repeated"
