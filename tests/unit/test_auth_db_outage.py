"""The authenticator while PostgreSQL is unavailable: a key read before keeps working past
its cache's TTL (nothing can be revoked meanwhile), a key never read gets 503 with
Retry-After (the gateway's hot path answers an HTTPException, anything else is a 500)."""

from fastapi import HTTPException

from shared.adapters.key_store import KeyRow
from shared.api_auth import Authenticator
from shared.domain.api_keys import Scope, format_key, secret_digest

SECRET = "A" * 43


class Pool:
    """PostgreSQL that answers until ``down``, then refuses connections."""

    def __init__(self, rows: dict[str, KeyRow]) -> None:
        self.rows = rows
        self.down = False

    async def fetchrow(self, _query: str, key_id: str) -> dict[str, object] | None:
        if self.down:
            raise ConnectionRefusedError(111, "Connect call failed")
        row = self.rows.get(key_id)
        return None if row is None else {
            "key_id": row.key_id, "tenant_id": row.tenant, "scope": row.scope.value,
            "secret_sha256": row.digest, "rate_per_s": row.rate_per_s, "revoked": row.revoked}


def row(key_id: str) -> KeyRow:
    return KeyRow(key_id, "default", Scope.INGEST, secret_digest(SECRET), 1000, False)


async def test_a_cached_key_outlives_its_ttl_and_an_unknown_one_gets_503() -> None:
    pool = Pool({"knownknown12": row("knownknown12"), "neverread123": row("neverread123")})
    authenticator = Authenticator(pool, ttl_s=0.0)  # type: ignore[arg-type]
    authenticator._ids.add("neverread123")
    known = "Bearer " + format_key(Scope.INGEST, "knownknown12", SECRET)
    assert (await authenticator.authenticate(known, Scope.INGEST)).tenant == "default"
    pool.down = True
    assert (await authenticator.authenticate(known, Scope.INGEST)).key_id == "knownknown12"
    try:
        await authenticator.authenticate(
            "Bearer " + format_key(Scope.INGEST, "neverread123", SECRET), Scope.INGEST)
    except HTTPException as refused:
        assert refused.status_code == 503 and refused.headers == {"Retry-After": "1"}
    else:
        raise AssertionError("a key that cannot be read was accepted")
