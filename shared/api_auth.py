"""API-key authentication, scopes and per-key rate limits for the HTTP services.

Unauthenticated traffic costs nothing: the ids of existing keys are held in memory,
loaded at start and kept current by PostgreSQL's notifications (``parcours_keys``), so a
key with an unknown id is refused without a query. A key that exists is read once and
cached for ``ttl_s`` (a revocation takes effect at once through the notification, within
``ttl_s`` if that connection is lost); while PostgreSQL is unavailable a cached key
is used past ``ttl_s`` and an uncached one gets 503 with Retry-After. Failed
authentications are rate-limited per client address: past its budget, an address gets
429 instead of 401. Every cache is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from fastapi import HTTPException, Request

from shared.adapters.key_store import CHANNEL, KeyRow, find_key, load_key_ids
from shared.adapters.postgres import DB_UNAVAILABLE, Listener
from shared.bounded import BoundedDict
from shared.domain.api_keys import Scope, parse_key, secret_matches
from shared.domain.rate_limit import Bucket, available, take

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="parcours"'}
MAX_KEYS = 10_000  # cached key rows and per-key buckets
MAX_ADDRESSES = 10_000  # client addresses with recent failures
FAILURES_PER_S, FAILURE_BURST = 20, 100  # per client address
# Ids missing from the set are still looked up, a few a second for the whole process:
# a key used within a millisecond of its creation can beat its notification.
LOOKUPS_PER_S, LOOKUP_BURST = 5, 10


@dataclass(frozen=True)
class Caller:
    tenant: str
    key_id: str
    scope: Scope


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of ``Bearer <token>``; the scheme is case-insensitive (RFC 9110)."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip(" ") if scheme.lower() == "bearer" else None


class Authenticator:
    def __init__(self, pool: asyncpg.Pool, ttl_s: float = 10.0) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._ids: set[str] = set()  # bounded by the table, not by what callers send
        self._rows: BoundedDict[str, tuple[float, KeyRow]] = BoundedDict(MAX_KEYS)
        self._buckets: BoundedDict[str, Bucket] = BoundedDict(MAX_KEYS)
        self._failures: BoundedDict[str, Bucket] = BoundedDict(MAX_ADDRESSES)
        self._lookups: Bucket | None = None
        self._listener: Listener | None = None
        # Bumped by every announced change: a row read while one arrived may predate it,
        # so it answers its request but is not kept.
        self._changes = 0

    async def start(self, dsn: str) -> None:
        """Follow key changes, then load the ids: a key created in between is not missed."""
        self._listener = await Listener.open(dsn, CHANNEL, self._changed, self._missed)
        self._ids |= await load_key_ids(self._pool)

    async def _missed(self) -> None:
        """Listening again after a lost connection: keys created or changed meanwhile were
        not announced."""
        self._changes += 1
        self._rows.clear()
        self._ids |= await load_key_ids(self._pool)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()

    def _changed(self, _connection: object, _pid: int, _channel: str, key_id: str) -> None:
        self._changes += 1
        self._ids.add(key_id)  # created, revoked or deleted: read again on its next use
        self._rows.pop(key_id, None)

    def remember(self, row: KeyRow, until: float | None = None) -> None:
        """Cache ``row`` (stand-ins in tests pass ``until=inf``: never read again)."""
        self._ids.add(row.key_id)
        self._rows[row.key_id] = (time.monotonic() if until is None else until, row)

    async def _row(self, key_id: str, address: str | None) -> KeyRow | None:
        now = time.monotonic()
        cached = self._rows.get(key_id)
        if cached is not None and (now - cached[0] < self._ttl_s or cached[0] > now):
            return cached[1]
        if key_id not in self._ids and not self._may_look_up(now, address):
            return None
        changes = self._changes
        try:
            row = await find_key(self._pool, key_id)
        except DB_UNAVAILABLE as error:
            if cached is not None:  # PostgreSQL away: nothing can be revoked meanwhile
                return cached[1]
            raise HTTPException(503, "the key store is unavailable; retry",
                                headers={"Retry-After": "1"}) from error
        if changes != self._changes:
            return row
        if row is None:
            self._ids.discard(key_id)
            self._rows.pop(key_id, None)
        else:
            self._ids.add(key_id)
            self._rows[key_id] = (now, row)
        return row

    def _may_look_up(self, now: float, address: str | None) -> bool:
        """Only for an address that has not been failing (half its budget left), and a few
        a second for the whole process: a flood, from one address or many, gets none."""
        if not available(self._failures.get(address or ""), now, FAILURES_PER_S,
                         FAILURE_BURST, need=FAILURE_BURST / 2):
            return False
        self._lookups, verdict = take(self._lookups, now, LOOKUPS_PER_S, LOOKUP_BURST)
        return verdict.allowed

    def _refuse(self, address: str | None, detail: str) -> HTTPException:
        """401, or 429 once the address has failed too often."""
        bucket, verdict = take(self._failures.get(address or ""), time.monotonic(),
                               FAILURES_PER_S, FAILURE_BURST)
        self._failures[address or ""] = bucket
        if not verdict.allowed:
            return HTTPException(429, "too many failed authentications from this address",
                                 headers={"Retry-After": str(verdict.retry_after_s)})
        return HTTPException(401, detail, headers=_CHALLENGE)

    async def authenticate(
        self, authorization: str | None, scope: Scope, address: str | None = None
    ) -> Caller:
        """The caller, or 401 (no key, unknown or revoked), 403 (other scope), 429 (past
        the key's rate, or the address's failures)."""
        token = bearer_token(authorization)
        if token is None:
            raise self._refuse(address, "send an API key: Authorization: Bearer prc_…")
        parsed = parse_key(token)
        row = None if parsed is None else await self._row(parsed.key_id, address)
        if parsed is None or row is None or row.revoked or not secret_matches(
            parsed.secret, row.digest
        ):
            raise self._refuse(address, "unknown or revoked API key")
        if row.scope is not scope:
            raise HTTPException(
                403, f"this is a key of scope {row.scope.value}; this endpoint needs one of"
                     f" scope {scope.value}"
            )
        self._limit(row)
        return Caller(row.tenant, row.key_id, row.scope)

    def _limit(self, row: KeyRow) -> None:
        bucket, verdict = take(self._buckets.get(row.key_id), time.monotonic(),
                               rate=row.rate_per_s, burst=2 * row.rate_per_s)
        self._buckets[row.key_id] = bucket
        if not verdict.allowed:
            raise HTTPException(429, f"rate limit of {row.rate_per_s} requests/s reached",
                                headers={"Retry-After": str(verdict.retry_after_s)})


def require(scope: Scope) -> Callable[[Request], Awaitable[Caller]]:
    """A FastAPI dependency: the caller of this request, or 401/403/429."""

    async def caller(request: Request) -> Caller:
        authenticator: Authenticator = request.app.state.authenticator
        client = request.client
        return await authenticator.authenticate(request.headers.get("authorization"), scope,
                                                client.host if client else None)

    return caller
