"""What SMS providers and apps report back, recorded: delivery receipts, inbound STOP /
HELP / START, push opens. Each is a reaction recorded once in the outbox (by its id: a
retried webhook changes nothing), with what it implies — quarantine for a number that does
not exist, SMS marketing consent for STOP and START — in the same transaction. The
reactions service's relay produces them to ``parcours.reactions.v1``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import asyncpg

from shared.adapters import (
    consent_store,
    feedback_store,
    quarantine_store,
    reaction_store,
    sent_messages,
)
from shared.adapters.rules_store import load_tenant_rules
from shared.adapters.sent_messages import SentMessage
from shared.domain.consent import ConsentChange, ConsentKind, Marketing, unsubscribe
from shared.domain.events import Channel
from shared.domain.reactions import Reaction, ReactionKind, reaction_id
from shared.domain.sms_keywords import Keyword, keyword
from shared.domain.sms_receipts import (
    InboundSms,
    SmsStatus,
    address_failure,
    inbound_message_id,
)
from shared.settings import Settings

log = logging.getLogger(__name__)
STOP_SOURCE, START_SOURCE = "sms-stop", "sms-start"  # consent's source, which START reads
_STOP_DETAIL = "inbound SMS: STOP"


def _reaction(tenant: str, message_id: str, kind: ReactionKind, channel: Channel, source: str,
              *, profile_id: str | None = None, address: str | None = None,
              sent: SentMessage | None = None, detail: str | None = None) -> Reaction:
    return Reaction(
        reactionId=reaction_id(tenant, message_id, kind), tenant=tenant, messageId=message_id,
        kind=kind, at=datetime.now(UTC), channel=channel, profileId=profile_id,
        address=None if profile_id else address, origin=sent and sent.origin, source=source,
        detail=detail and detail[:2000])


async def sms_status(pool: asyncpg.Pool, status: SmsStatus) -> int:
    """Record a delivery receipt; how many reactions were new (0: unknown message, or
    seen before). A failure blaming the number feeds quarantine, once per receipt."""
    sent = await sent_messages.find(pool, str(status.messageId))
    if sent is None or sent.channel != Channel.SMS:
        return 0
    delivered = status.status == "delivered"
    kind = ReactionKind.SMS_DELIVERED if delivered else ReactionKind.FAILED
    reaction = _reaction(sent.tenant, sent.message_id, kind, Channel.SMS, "provider",
                         profile_id=sent.profile_id, address=status.to, sent=sent,
                         detail=None if delivered else status.error or status.status)
    failure = None if delivered else address_failure(status.error)
    settings = failure and status.to and (
        await load_tenant_rules(pool, sent.tenant)).settings.quarantine
    async with pool.acquire() as connection, connection.transaction():
        new = await reaction_store.record(connection, [reaction])
        if new and failure and status.to and settings:
            await quarantine_store.record_failures(connection, [
                quarantine_store.AddressFailure(sent.tenant, "sms", status.to, failure,
                                                f"provider receipt: {status.error}",
                                                settings)], datetime.now(UTC))
    return len(new)


async def inbound_sms(pool: asyncpg.Pool, settings: Settings, tenant: str, provider: str,
                      message: InboundSms) -> tuple[Keyword | None, str | None]:
    """STOP withdraws SMS marketing consent of every profile of the tenant with that
    number and records ``unsubscribed`` for each it changed (or for the number, when no
    profile has it); START gives it back only to those a STOP took it
    from; HELP only answers. Returns the keyword and the answer to send back."""
    found = keyword(message.text)
    if found is Keyword.HELP:
        return found, settings.sms_help_reply
    if found is None:
        return None, None
    now = datetime.now(UTC)
    async with pool.acquire() as connection, connection.transaction():
        owners = await feedback_store.phone_owners(connection, tenant, message.sender)
        if found is Keyword.STOP:
            # A profile already opted out is left as it is (and its source with it).
            opting_out = [o for o in owners if o.marketing != Marketing.OPTED_OUT]
            changes = [(o.profile_id, unsubscribe("sms"), STOP_SOURCE) for o in opting_out]
            fallback = inbound_message_id(tenant, provider, message.id)
            reactions = [_reaction(tenant, o.last_sms or fallback, ReactionKind.UNSUBSCRIBED,
                                   Channel.SMS, "provider", profile_id=o.profile_id,
                                   detail=_STOP_DETAIL) for o in opting_out]
            if not owners:  # a number no profile has: its unsubscribe is still news
                reactions = [_reaction(tenant, fallback, ReactionKind.UNSUBSCRIBED,
                                       Channel.SMS, "provider", address=message.sender,
                                       detail=_STOP_DETAIL)]
            await consent_store.apply_changes(connection, tenant, changes, now)
            await reaction_store.record(connection, reactions)
            return found, settings.sms_stop_reply
        opt_in = ConsentChange(ConsentKind.MARKETING, "sms", Marketing.OPTED_IN.value)
        await consent_store.apply_changes(connection, tenant, [
            (o.profile_id, opt_in, START_SOURCE) for o in owners
            if o.marketing == Marketing.OPTED_OUT and o.marketing_source == STOP_SOURCE], now)
    return found, settings.sms_start_reply


async def push_opened(pool: asyncpg.Pool, sent: SentMessage) -> int:
    reaction = _reaction(sent.tenant, sent.message_id, ReactionKind.PUSH_OPENED, Channel.PUSH,
                         "app", profile_id=sent.profile_id, sent=sent)
    return len(await reaction_store.record(pool, [reaction]))
