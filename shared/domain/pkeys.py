"""Event keys (pKeys) that carry their own proof of issue.

A pKey is a random id plus an HMAC over (tenant, event id, random id). ``GET`` can then
answer ``pending`` for a key the gateway issued but no stage has recorded yet, and 404
for one it never issued, without the gateway writing a row per request. Events produced
straight to Kafka get a pKey derived from the producer's own key for them (``derive_pkey``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

_RANDOM_BYTES = 12
_TAG_BYTES = 8


def _tag(secret: bytes, tenant: str, event_id: str, nonce: bytes) -> bytes:
    message = b"\x00".join((tenant.encode(), event_id.encode(), nonce))
    return hmac.new(secret, message, hashlib.sha256).digest()[:_TAG_BYTES]


def mint_pkey(secret: bytes, tenant: str, event_id: str, nonce: bytes) -> str:
    if len(nonce) != _RANDOM_BYTES:
        raise ValueError(f"nonce must be {_RANDOM_BYTES} bytes")
    raw = nonce + _tag(secret, tenant, event_id, nonce)
    return base64.b32encode(raw).decode().rstrip("=").lower()


def verify_pkey(secret: bytes, tenant: str, event_id: str, pkey: str) -> bool:
    try:
        raw = base64.b32decode(pkey.upper() + "=" * (-len(pkey) % 8))
    except (ValueError, TypeError):
        return False
    if len(raw) != _RANDOM_BYTES + _TAG_BYTES:
        return False
    nonce, tag = raw[:_RANDOM_BYTES], raw[_RANDOM_BYTES:]
    return hmac.compare_digest(tag, _tag(secret, tenant, event_id, nonce))


def derive_pkey(secret: bytes, tenant: str, event_id: str, event_key: str) -> str:
    """The pKey of an event an internal system produced to Kafka under its own key.

    Deterministic, so a record produced again is the same event (one status, one message);
    the nonce is itself an HMAC, so nobody without the secret can predict or forge it, and
    ``verify_pkey`` accepts it like any pKey the gateway minted.
    """
    message = json.dumps(["produced", tenant, event_id, event_key]).encode()
    nonce = hmac.new(secret, message, hashlib.sha256).digest()[:_RANDOM_BYTES]
    return mint_pkey(secret, tenant, event_id, nonce)
