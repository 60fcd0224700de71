"""Signed unsubscribe links: ``/u/<token>`` (RFC 8058 one-click POST, and the preference
page on GET).

A token names (tenant, profile id, channel, message id) and is signed with HMAC-SHA256
(truncated to 128 bits) under a key named in the token, from a ring like the tracking
links' (``shared.domain.tracking_links.parse_keyring``: the first key signs, all verify),
so the keys rotate. The MAC is computed over a context string of its own ("unsubscribe"),
so no other signed token of the platform can ever pass for one. The token is the
recipient's only credential: whoever holds the link may change that profile's marketing
consent on that channel and its topic subscriptions, nothing else.

    token = <key id> "." base64url(message uuid (16) | channel (1) | len(tenant) (1)
                                   | tenant | profile id | mac (16))
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
import uuid
from dataclasses import dataclass

from shared.domain.tracking_links import Keyring

_HEAD = struct.Struct(">16scB")
_MAC = 16
_CONTEXT = b"parcours/unsubscribe/"
_CHANNEL_BYTE = {"email": b"e", "sms": b"s", "push": b"p"}
_BYTE_CHANNEL = {v: k for k, v in _CHANNEL_BYTE.items()}
MAX_TOKEN = 600  # characters: a profile id of up to ~300 bytes


@dataclass(frozen=True)
class Unsubscribe:
    """What a valid token names."""

    tenant: str
    profile_id: str
    channel: str
    message_id: str


def _mac(secret: bytes, key_id: str, body: bytes) -> bytes:
    return hmac.new(secret, _CONTEXT + key_id.encode() + b"." + body,
                    hashlib.sha256).digest()[:_MAC]


def sign(keys: Keyring, tenant: str, profile_id: str, channel: str, message_id: str) -> str:
    tenant_bytes = tenant.encode()
    if not 0 < len(tenant_bytes) < 256 or not profile_id:
        raise ValueError("a tenant of 1 to 255 bytes and a profile id are needed")
    body = (_HEAD.pack(uuid.UUID(message_id).bytes, _CHANNEL_BYTE[channel], len(tenant_bytes))
            + tenant_bytes + profile_id.encode())
    raw = body + _mac(keys.secrets[keys.current], keys.current, body)
    return f"{keys.current}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}"


def verify(keys: Keyring, token: str) -> Unsubscribe | None:
    """What the token names, or None: unknown key, altered, truncated, not a token."""
    key_id, dot, encoded = token.partition(".")
    secret = keys.secrets.get(key_id)
    if not dot or secret is None or len(token) > MAX_TOKEN:
        return None
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != encoded:
        return None  # not canonical (unused bits set): one token per unsubscribe
    body, mac = raw[:-_MAC], raw[-_MAC:]
    if len(body) <= _HEAD.size or not hmac.compare_digest(mac, _mac(secret, key_id, body)):
        return None
    message, channel_byte, tenant_length = _HEAD.unpack_from(body)
    channel = _BYTE_CHANNEL.get(channel_byte)
    rest = body[_HEAD.size:]
    if channel is None or not 0 < tenant_length < len(rest):
        return None
    try:
        tenant, profile_id = rest[:tenant_length].decode(), rest[tenant_length:].decode()
    except UnicodeDecodeError:
        return None
    return Unsubscribe(tenant, profile_id, channel, str(uuid.UUID(bytes=message)))


def unsubscribe_url(base_url: str, keys: Keyring, tenant: str, profile_id: str, channel: str,
                    message_id: str) -> str:
    return f"{base_url.rstrip('/')}/u/{sign(keys, tenant, profile_id, channel, message_id)}"


def wants_unsubscribe(profile_id: str | None, marketing: bool, journey: bool) -> bool:
    """RFC 8058 headers go on every profile-based message that is not purely transactional:
    its event is configured ``marketing``, or a journey sends it."""
    return profile_id is not None and (marketing or journey)


def list_unsubscribe_headers(url: str, mailto: str | None = None) -> list[tuple[str, str]]:
    """``List-Unsubscribe`` (RFC 2369: the https link, then a mailto if one is given) and
    ``List-Unsubscribe-Post`` (RFC 8058: the link takes a one-click POST)."""
    links = f"<{url}>" + (f", <mailto:{mailto}>" if mailto else "")
    return [("List-Unsubscribe", links),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]


# The mailto form (RFC 2369): ``unsub+<key id>.<base32(message uuid | mac (8))>@<bounce
# domain>``, within a local part's 64 characters; the tenant, profile and channel are the
# message's, looked up by its id (``named_by``), and the MAC covers them as the link's does.
_MAIL_MAC = 8
_MAIL_PREFIX = "unsub+"
_MAIL_LOCAL = re.compile(r"^unsub\+([a-z0-9_-]{1,16})\.([a-z2-7]{39})$")


def mailto(keys: Keyring, tenant: str, profile_id: str, channel: str, message_id: str,
           domain: str) -> str:
    body = uuid.UUID(message_id).bytes
    mac = _mail_mac(keys.secrets[keys.current], keys.current, tenant, profile_id, channel,
                    message_id)
    encoded = base64.b32encode(body + mac).decode().rstrip("=").lower()
    return f"{_MAIL_PREFIX}{keys.current.lower()}.{encoded}@{domain}"


def _mail_mac(secret: bytes, key_id: str, tenant: str, profile_id: str, channel: str,
              message_id: str) -> bytes:
    named = "\x00".join((key_id, tenant, profile_id, channel, message_id)).encode()
    return hmac.new(secret, b"parcours/unsubscribe-mailto/" + named,
                    hashlib.sha256).digest()[:_MAIL_MAC]


def looks_like_mailto(address: str) -> bool:
    """Shaped like an unsubscribe address, signed or not (what a mail server accepts)."""
    return _MAIL_LOCAL.match(address.strip().strip("<>").rpartition("@")[0].lower()) is not None


def _mail_parts(address: str) -> tuple[str, bytes] | None:
    """The key id and the bytes of an unsubscribe address, its base32 canonical only (the
    last character's unused bits zero: one address per message, not eight)."""
    match = _MAIL_LOCAL.match(address.strip().strip("<>").rpartition("@")[0].lower())
    if match is None:
        return None
    key_id, encoded = match.groups()
    raw = base64.b32decode(encoded.upper() + "=" * (-len(encoded) % 8))
    if base64.b32encode(raw).decode().rstrip("=").lower() != encoded:
        return None
    return key_id, raw


def message_of_mailto(address: str) -> tuple[str, str] | None:
    """(key id as written, message id) of an unsubscribe address; verify with ``named_by``."""
    parts = _mail_parts(address)
    return None if parts is None else (parts[0], str(uuid.UUID(bytes=parts[1][:16])))


def named_by(keys: Keyring, address: str, tenant: str, profile_id: str, channel: str
             ) -> Unsubscribe | None:
    """The unsubscribe an address names, given what its message was (tenant, profile,
    channel), if its MAC is right; None otherwise."""
    parts = _mail_parts(address)
    if parts is None:
        return None
    key_id, raw = parts
    secret = next((s for k, s in keys.secrets.items() if k.lower() == key_id), None)
    if secret is None:
        return None
    message_id = str(uuid.UUID(bytes=raw[:16]))
    expected = _mail_mac(secret, next(k for k in keys.secrets if k.lower() == key_id), tenant,
                         profile_id, channel, message_id)
    if not hmac.compare_digest(raw[16:], expected):
        return None
    return Unsubscribe(tenant, profile_id, channel, message_id)
