"""The envelope sender (return path) of an email carries its message id, signed, so a
bounce (a DSN) sent back to it names the message without parsing its body (VERP):
``b+<message id hex>.<signature>@<bounce domain>``. The signature (HMAC-SHA256, 10 bytes,
base32) keeps a forged bounce from quarantining someone else's address."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid

_LOCAL = re.compile(r"^b\+([0-9a-f]{32})\.([a-z2-7]{16})$")


def _signature(secret: bytes, message_hex: str) -> str:
    digest = hmac.new(secret, b"verp/" + message_hex.encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode().lower()


def return_path(secret: bytes, message_id: str, bounce_domain: str) -> str:
    message_hex = uuid.UUID(message_id).hex
    return f"b+{message_hex}.{_signature(secret, message_hex)}@{bounce_domain}"


def message_of(secret: bytes, address: str) -> str | None:
    """The message id a return path names, or None when it is not one of ours (or forged)."""
    local, _, _domain = address.strip().strip("<>").rpartition("@")
    match = _LOCAL.match(local.lower())
    if match is None:
        return None
    message_hex, signature = match.groups()
    if not hmac.compare_digest(signature, _signature(secret, message_hex)):
        return None
    return str(uuid.UUID(message_hex))


def looks_like_return_path(address: str) -> bool:
    """Shaped like one of ours, signed or not: what a bounce server accepts at RCPT (a
    forged signature is then accepted and dropped, so the sender learns nothing)."""
    local, _, _domain = address.strip().strip("<>").rpartition("@")
    return _LOCAL.match(local.lower()) is not None
