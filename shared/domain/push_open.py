"""The token a push carries in its data (``openToken``) so the app can report it opened:
an HMAC over (tenant, message id) under a secret of ours; the app sends it back with
``POST /v1/push/opened`` and nothing else proves the message was ours to report. Also:
which push refusals say the device is gone (APNs 410 ``Unregistered``, FCM
``UNREGISTERED``), so the profile forgets it."""

from __future__ import annotations

import base64
import hashlib
import hmac

_TOKEN_BYTES = 16  # 128 bits: enough against guessing, short in a push payload


def open_token(secret: str, tenant: str, message_id: str) -> str:
    mac = hmac.new(secret.encode(), f"push-open\x00{tenant}\x00{message_id}".encode(),
                   hashlib.sha256).digest()[:_TOKEN_BYTES]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def valid_open_token(secret: str, tenant: str, message_id: str, token: str) -> bool:
    return hmac.compare_digest(open_token(secret, tenant, message_id), token)


def device_unregistered(reason: str) -> bool:
    """A permanent push refusal (its reason as the sender keeps it, "provider 410: …")
    that means the token is no longer valid, not that our request was wrong."""
    return reason.startswith("provider 410") or "UNREGISTERED" in reason.upper()
