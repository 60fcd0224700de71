"""Addresses as the denylist and quarantine key them: an email folded to lower case (its
domain too: a denylist entry ``example.com`` covers every address there), a phone number
or a device token as given (E.164 numbers are already canonical)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EntryKind = Literal["address", "domain"]


def normalise(channel: str, address: str) -> str:
    address = address.strip()
    return address.lower() if channel == "email" else address


def domain_of(email: str) -> str | None:
    _, at, domain = email.rpartition("@")
    return domain.lower() if at and domain else None


@dataclass(frozen=True)
class Entry:
    channel: str
    entry: str
    kind: EntryKind


def denylist_entry(channel: str, text: str) -> Entry:
    """What an administrator types: ``someone@example.com``, ``example.com`` or
    ``@example.com`` (a whole domain, email only), ``+33612345678``, a device token."""
    text = normalise(channel, text)
    if not text:
        raise ValueError("an entry is an address, a phone number, a token or a domain")
    if channel == "email" and "@" not in text.lstrip("@"):
        return Entry(channel, text.lstrip("@"), "domain")
    return Entry(channel, text, "address")


def lookup_keys(channel: str, address: str) -> tuple[str, ...]:
    """The entries that would cover ``address``: itself, and its domain for an email."""
    key = normalise(channel, address)
    domain = domain_of(key) if channel == "email" else None
    return (key, domain) if domain else (key,)


def recipient_address(channel: str, to: dict[str, str]) -> str | None:
    """The message's address on its channel (the send record's ``to``)."""
    field = {"email": "email", "sms": "mobilePhone", "push": "registrationToken"}[channel]
    return to.get(field)
