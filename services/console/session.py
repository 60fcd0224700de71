"""Console sessions. Signing in exchanges an admin API key for a cookie that holds the
key, its tenant and a CSRF token, encrypted and authenticated (Fernet: AES-128-CBC and
HMAC-SHA256) with the console's session keys, and stamped with its time: past the
lifetime it no longer opens. Nothing is kept on the server, so a restart or a second
console signs nobody out, and a key revoked in the admin API ends its sessions at their
next request (the admin API answers 401).

Keys are ``id:secret,id:secret`` (``PARCOURS_CONSOLE_SESSION_KEYS``): the first seals,
all open, so a key is rotated by putting the new one first and dropping the old one a
session lifetime later."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

COOKIE = "parcours_console"
MAX_COOKIE = 4096  # what browsers keep; a longer value is not ours


@dataclass(frozen=True)
class Session:
    api_key: str
    tenant: str
    tenant_name: str
    csrf: str  # the synchroniser token every form and htmx request carries
    issued_at: float


def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


class SessionSeal:
    def __init__(self, keys: str, lifetime_s: float) -> None:
        secrets_ = [entry.partition(":")[2] or entry for entry in keys.split(",")
                    if entry.strip()]
        if not secrets_:
            raise ValueError("console_session_keys holds no key")
        self._fernet = MultiFernet([_fernet(secret.strip()) for secret in secrets_])
        self.lifetime_s = lifetime_s

    def seal(self, api_key: str, tenant: str, tenant_name: str) -> tuple[str, Session]:
        session = Session(api_key, tenant, tenant_name, secrets.token_urlsafe(32), time.time())
        token = self._fernet.encrypt(orjson.dumps(
            [session.api_key, session.tenant, session.tenant_name, session.csrf,
             session.issued_at]))
        return token.decode(), session

    def open(self, token: str | None, now: float | None = None) -> Session | None:
        """The session, or None when the cookie is missing, altered, sealed with a key no
        longer known, or older than the lifetime (at ``now``, default the clock's)."""
        if not token or len(token) > MAX_COOKIE:
            return None
        try:
            fields = orjson.loads(self._fernet.decrypt_at_time(
                token.encode(), ttl=int(self.lifetime_s),
                current_time=int(time.time() if now is None else now)))
            return Session(*fields)
        except (InvalidToken, ValueError, TypeError):
            return None


def csrf_matches(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), (given or "").encode())
