"""One mail to one return path: which message it names (the VERP address, signed), what it
says (``mail_feedback``), and what that changes, in one transaction — the reaction
recorded once, the address's quarantine row (a bounce, by the senders' rules), the
profile's marketing consent on email (a complaint)."""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum

import asyncpg

from shared.adapters import consent_store, quarantine_store, reaction_store, sent_messages
from shared.adapters.quarantine_store import AddressFailure
from shared.adapters.rules_store import load_tenant_rules
from shared.adapters.sent_messages import SentMessage
from shared.adapters.smtp import address_fault
from shared.domain.consent import unsubscribe
from shared.domain.delivery_rules.addresses import normalise
from shared.domain.mail_feedback import Feedback, Unreadable, read_feedback
from shared.domain.reactions import Bounce, Reaction, ReactionKind, reaction_id
from shared.domain.routing import EventOrigin
from shared.domain.verp import looks_like_return_path, message_of

log = logging.getLogger(__name__)
# Where mailbox providers' feedback loops send complaints (registered with each provider):
# this local part at a bounce domain.
FEEDBACK_LOOP = "fbl"


class Outcome(StrEnum):
    HARD = "hard"
    SOFT = "soft"
    COMPLAINED = "complained"
    REPEATED = "repeated"  # recorded before: nothing more
    IGNORED = "ignored"  # a report that is neither a failure nor a complaint
    FORGED = "forged"  # a return path whose signature is not ours
    UNKNOWN = "unknown"  # a message the ledger does not know (erased, or never sent)
    UNREADABLE = "unreadable"


def local_part(address: str) -> str:
    """What the logs say of an address: a return path's local part names the message; the
    domain, ours, adds nothing, and a forged address may be someone's (no personal data)."""
    return address.partition("@")[0]


async def handle(pool: asyncpg.Pool, secret: bytes, rcpt: str, data: bytes, now: datetime
                 ) -> Outcome:
    """``rcpt``: a return path, or the feedback-loop address (``FEEDBACK_LOOP``@any domain),
    where the complaint's quoted original names the message by its return path."""
    to_return_path = looks_like_return_path(rcpt)
    message_id = message_of(secret, rcpt) if to_return_path else None
    if to_return_path and message_id is None:
        log.warning("a report to %s@, whose signature is not ours: dropped", local_part(rcpt))
        return Outcome.FORGED
    try:
        feedback = read_feedback(data)
    except Exception as error:  # any mail a remote sends is answered
        why = error if isinstance(error, Unreadable) else f"{type(error).__name__}: {error}"
        log.warning("a report to %s@ is unreadable (%s): dropped", local_part(rcpt), why)
        return Outcome.UNREADABLE
    if feedback is None:
        return Outcome.IGNORED
    if not to_return_path:
        quoted = feedback.return_path if feedback.kind == "complained" else None
        message_id = quoted and message_of(secret, quoted)
        if not message_id:
            log.warning("a report to %s@ quoting no return path of ours (%s@): dropped",
                        local_part(rcpt), quoted and local_part(quoted))
            return Outcome.FORGED if quoted else Outcome.UNKNOWN
    assert message_id is not None
    async with pool.acquire() as connection, connection.transaction():
        sent = await sent_messages.find(connection, message_id)
        if sent is None:
            log.warning("a report about message %s, which the ledger does not know: dropped",
                        message_id)
            return Outcome.UNKNOWN
        if not await reaction_store.record(connection, [reaction(sent, feedback, now)]):
            return Outcome.REPEATED
        if feedback.kind == "complained":
            await _withdraw_consent(connection, sent, now)
            return Outcome.COMPLAINED
        await _quarantine(connection, sent, feedback, now)
        return Outcome.HARD if feedback.type == "hard" else Outcome.SOFT


def reaction(sent: SentMessage, feedback: Feedback, now: datetime) -> Reaction:
    complained = feedback.kind == "complained"
    kind = ReactionKind.COMPLAINED if complained else ReactionKind.BOUNCED
    bounce = None if complained or feedback.type is None else feedback.type
    origin = (EventOrigin(eventId=sent.origin_id, pKey=sent.pkey)
              if sent.origin_kind == "event" and sent.origin_id and sent.pkey else None)
    return Reaction(
        reactionId=reaction_id(sent.tenant, sent.message_id, kind, bounce=bounce),
        tenant=sent.tenant, messageId=sent.message_id, kind=kind, at=now,
        channel=sent.channel, profileId=sent.profile_id,
        address=None if sent.profile_id else feedback.recipient, origin=origin,
        bounce=Bounce(type=bounce, reply=feedback.reply) if bounce else None,
        source="arf" if complained else "dsn",
        detail=feedback.reply[:2000] if complained else None)


def bounced_address(sent: SentMessage, feedback: Feedback) -> str | None:
    """The address a bounce quarantines, from our records where we have them: a profile's
    message went to the profile's address (the DSN's recipient, if it names another,
    means the profile changed address since: nothing to quarantine); an event-based
    message's address is not kept, so the DSN's recipient is taken."""
    if sent.channel != "email":
        return None
    if sent.profile_id is None:
        return feedback.recipient
    mine = sent.profile_email
    if not mine or (feedback.recipient
                    and normalise("email", feedback.recipient) != normalise("email", mine)):
        return None
    return mine


async def _quarantine(connection: asyncpg.Connection, sent: SentMessage, feedback: Feedback,
                      now: datetime) -> None:
    address = bounced_address(sent, feedback)
    kind = feedback.type or "hard"
    # The senders' rule: an enhanced status (here the DSN's) says whether the address is
    # to blame (5.7.1 spam, 4.4.7 expired do not); without one, every failure does.
    code = 550 if kind == "hard" else 450
    if address is None or not address_fault(code, feedback.status or ""):
        return
    rules = await load_tenant_rules(connection, sent.tenant)
    failure = AddressFailure(sent.tenant, "email", normalise("email", address), kind,
                             f"dsn {feedback.status or kind}: {feedback.reply}",
                             rules.settings.quarantine)
    await quarantine_store.record_failures(connection, [failure], now)


async def _withdraw_consent(connection: asyncpg.Connection, sent: SentMessage,
                            now: datetime) -> None:
    """Marketing consent on email only (a transactional message still goes)."""
    if sent.profile_id and sent.profile_exists:
        await consent_store.apply_changes(
            connection, sent.tenant, [(sent.profile_id, unsubscribe("email"), "complaint")],
            now)
