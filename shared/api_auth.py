"""API-key authentication, scopes and per-key rate limits for the HTTP services.

Keys are looked up once and cached for ``ttl_s`` (a revocation takes effect within it),
so the ingestion hot path does no database round trip per request.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from fastapi import HTTPException, Request

from shared.adapters.key_store import KeyRow, find_key
from shared.domain.api_keys import Scope, parse_key, secret_matches
from shared.domain.rate_limit import Bucket, take

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="parcours"'}


@dataclass(frozen=True)
class Caller:
    tenant: str
    key_id: str
    scope: Scope


class Authenticator:
    def __init__(self, pool: asyncpg.Pool, ttl_s: float = 10.0) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._keys: dict[str, tuple[float, KeyRow | None]] = {}
        self._buckets: dict[str, Bucket] = {}

    async def _row(self, key_id: str) -> KeyRow | None:
        now = time.monotonic()
        cached = self._keys.get(key_id)
        if cached is None or now - cached[0] >= self._ttl_s:
            cached = (now, await find_key(self._pool, key_id))
            self._keys[key_id] = cached
        return cached[1]

    async def authenticate(self, authorization: str | None, scope: Scope) -> Caller:
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(401, "send an API key: Authorization: Bearer prc_…",
                                headers=_CHALLENGE)
        parsed = parse_key(authorization.removeprefix("Bearer ").strip())
        row = None if parsed is None else await self._row(parsed.key_id)
        if parsed is None or row is None or row.revoked or not secret_matches(
            parsed.secret, row.digest
        ):
            raise HTTPException(401, "unknown or revoked API key", headers=_CHALLENGE)
        if row.scope is not scope:
            raise HTTPException(
                403, f"this is an {row.scope.value} key; this endpoint needs an {scope.value} key"
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
        return await authenticator.authenticate(request.headers.get("authorization"), scope)

    return caller
