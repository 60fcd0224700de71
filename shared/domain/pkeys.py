"""Event keys (pKeys) that carry their own proof of issue.

A pKey is a random id plus an HMAC over (tenant, event id, random id). ``GET`` can then
answer ``pending`` for a key the gateway issued but no stage has recorded yet, and 404
for one it never issued, without the gateway writing a row per request. Events produced
straight to Kafka get a pKey derived from the producer's own key for them (``derive_pkey``).

A pKey the gateway mints carries the second it was issued (``mint_timed_pkey``: the first
4 bytes of a 16-byte nonce, under the HMAC, so nobody can forge or move it): the event's
status and ledger rows are partitioned by that day (issue 15, migration 040's
``pkey_day``), and ``GET`` can tell a status past its retention from one not yet written.
Timed pKeys are 39 characters; the others (derived, or minted before) 32.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

_RANDOM_BYTES = 12
_TIMED_NONCE_BYTES = 16  # 4 bytes of unix seconds, then 12 random bytes
_TAG_BYTES = 8
TIMED_LENGTH = 39  # characters of a timed pKey (24 bytes in base32, unpadded)


def _tag(secret: bytes, tenant: str, event_id: str, nonce: bytes) -> bytes:
    message = b"\x00".join((tenant.encode(), event_id.encode(), nonce))
    return hmac.new(secret, message, hashlib.sha256).digest()[:_TAG_BYTES]


def mint_pkey(secret: bytes, tenant: str, event_id: str, nonce: bytes) -> str:
    if len(nonce) not in (_RANDOM_BYTES, _TIMED_NONCE_BYTES):
        raise ValueError(f"nonce must be {_RANDOM_BYTES} or {_TIMED_NONCE_BYTES} bytes")
    raw = nonce + _tag(secret, tenant, event_id, nonce)
    return base64.b32encode(raw).decode().rstrip("=").lower()


def verify_pkey(secret: bytes, tenant: str, event_id: str, pkey: str) -> bool:
    try:
        raw = base64.b32decode(pkey.upper() + "=" * (-len(pkey) % 8))
    except (ValueError, TypeError):
        return False
    if len(raw) not in (_RANDOM_BYTES + _TAG_BYTES, _TIMED_NONCE_BYTES + _TAG_BYTES):
        return False
    nonce, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
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


def mint_timed_pkey(secret: bytes, tenant: str, event_id: str, at: float, random: bytes
                    ) -> str:
    """A pKey issued at ``at`` (unix seconds; whole seconds are kept)."""
    if len(random) != _RANDOM_BYTES:
        raise ValueError(f"random must be {_RANDOM_BYTES} bytes")
    return mint_pkey(secret, tenant, event_id, int(at).to_bytes(4, "big") + random)


def pkey_time(pkey: str) -> int | None:
    """The unix second a timed pKey was issued; None for a pKey without one. Read without
    the secret: use it only for a pKey verified (or one a stage already trusts)."""
    if len(pkey) != TIMED_LENGTH:
        return None
    try:
        raw = base64.b32decode(pkey[:8].upper())
    except (ValueError, TypeError):
        return None
    return int.from_bytes(raw[:4], "big")
