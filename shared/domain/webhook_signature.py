"""Signed provider webhooks: what an SMS or push provider posts back (delivery receipts,
inbound messages) carries ``X-Parcours-Timestamp`` (Unix seconds) and
``X-Parcours-Signature: v1=<hex HMAC-SHA256 over "<timestamp>.<raw body>">`` under the
provider's secret. Pure: the caller brings the clock and remembers signatures already
seen (a replay within the window is refused; outside it, the timestamp is)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

SCHEME = "v1"
TIMESTAMP_HEADER = "x-parcours-timestamp"
SIGNATURE_HEADER = "x-parcours-signature"


class Refusal(StrEnum):
    MISSING = "missing signature or timestamp"
    STALE = "timestamp outside the replay window"
    FORGED = "signature does not match"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SCHEME}={digest.hexdigest()}"


@dataclass(frozen=True)
class Verified:
    signature: str  # what a replay cache remembers until the window has passed
    timestamp: int


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes,
           now: float, window_s: float) -> Verified | Refusal:
    """The signature, when it is ours and recent; else why not. The stale check comes
    first, but both are answered alike (401), so a caller learns nothing from which."""
    if not timestamp or not signature or not secret:
        return Refusal.MISSING
    try:
        sent = int(timestamp)
    except ValueError:
        return Refusal.MISSING
    if abs(now - sent) > window_s:
        return Refusal.STALE
    expected = sign(secret, sent, body)
    given = [s.strip() for s in signature.split(",")]  # several during a secret's rotation
    if not any(hmac.compare_digest(expected, s) for s in given):
        return Refusal.FORGED
    return Verified(expected, sent)


def parse_secrets(text: str) -> dict[str, str]:
    """``provider:secret,provider:secret`` (the setting) as a mapping."""
    pairs = (item.split(":", 1) for item in text.split(",") if item.strip())
    return {name.strip(): secret.strip() for name, secret in pairs}
