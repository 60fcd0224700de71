import secrets

import pytest
from fastapi import HTTPException

from shared.adapters.key_store import KeyRow
from shared.api_auth import FAILURE_BURST, LOOKUP_BURST, MAX_ADDRESSES, Authenticator
from shared.domain.api_keys import Scope, format_key, parse_key, secret_digest, secret_matches
from shared.domain.rate_limit import Bucket, available, take

SECRET = "A" * 43


def test_a_formatted_key_parses_back() -> None:
    key = format_key(Scope.INGEST, "abcdefghijkl", SECRET)
    parsed = parse_key(key)
    assert parsed is not None
    assert (parsed.scope, parsed.key_id, parsed.secret) == (Scope.INGEST, "abcdefghijkl", SECRET)


@pytest.mark.parametrize(
    "bad",
    ["", "Bearer x", "prc_root_abcdefghijkl_" + SECRET, "prc_admin_short_" + SECRET,
     "prc_admin_abcdefghijkl_tooshort", format_key(Scope.ADMIN, "abcdefghijkl", SECRET) + "x"],
)
def test_malformed_keys_do_not_parse(bad: str) -> None:
    assert parse_key(bad) is None


def test_only_the_right_secret_matches_its_digest() -> None:
    digest = secret_digest(SECRET)
    assert secret_matches(SECRET, digest)
    assert not secret_matches("B" * 43, digest)


def test_a_bucket_allows_a_burst_then_refuses_with_a_retry_delay() -> None:
    bucket = None
    for _ in range(5):
        bucket, verdict = take(bucket, 0.0, rate=1, burst=5)
        assert verdict.allowed
    bucket, verdict = take(bucket, 0.0, rate=1, burst=5)
    assert not verdict.allowed and verdict.retry_after_s == 1


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket, _ = take(Bucket(0, 0.0), 0.5, rate=10, burst=3)  # 5 tokens earned, capped at 3
    assert bucket.tokens == pytest.approx(2)
    _, verdict = take(Bucket(0.2, 0.0), 0.0, rate=0.5, burst=1)
    assert not verdict.allowed and verdict.retry_after_s == 2


# -- the authenticator, with a stand-in for PostgreSQL that counts key lookups


class Pool:
    def __init__(self, rows: dict[str, KeyRow] | None = None) -> None:
        self.rows = rows or {}
        self.lookups = 0

    async def fetchrow(self, _query: str, key_id: str) -> dict[str, object] | None:
        self.lookups += 1
        row = self.rows.get(key_id)
        return None if row is None else {
            "key_id": row.key_id, "tenant_id": row.tenant, "scope": row.scope.value,
            "secret_sha256": row.digest, "rate_per_s": row.rate_per_s, "revoked": row.revoked}


def a_row(key_id: str = "knownknown12", revoked: bool = False) -> KeyRow:
    return KeyRow(key_id, "default", Scope.INGEST, secret_digest(SECRET), 1000, revoked)


async def status_of(authenticator: Authenticator, header: str | None,
                    address: str = "192.0.2.1") -> int:
    try:
        await authenticator.authenticate(header, Scope.INGEST, address)
    except HTTPException as refused:
        return refused.status_code
    return 200


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEARER"])
async def test_the_bearer_scheme_is_case_insensitive(scheme: str) -> None:
    authenticator = Authenticator(Pool())  # type: ignore[arg-type]
    authenticator.remember(a_row(), until=float("inf"))
    key = format_key(Scope.INGEST, "knownknown12", SECRET)
    assert await status_of(authenticator, f"{scheme} {key}") == 200
    assert await status_of(authenticator, f"Basic {key}") == 401


async def test_a_flood_of_unknown_key_ids_costs_no_lookup_and_no_memory() -> None:
    pool = Pool()
    authenticator = Authenticator(pool)  # type: ignore[arg-type]
    authenticator.remember(a_row(), until=float("inf"))
    statuses = [await status_of(authenticator, "Bearer " + format_key(
        Scope.INGEST, secrets.token_hex(6), secrets.token_urlsafe(32))) for _ in range(3000)]
    assert pool.lookups <= LOOKUP_BURST  # a few while the address was not failing yet
    assert set(statuses) == {401, 429} and statuses[:FAILURE_BURST] == [401] * FAILURE_BURST
    assert len(authenticator._rows) == 1 and len(authenticator._ids) == 1
    assert len(authenticator._failures) == 1
    # The known key still works from that address: only failures are limited.
    key = format_key(Scope.INGEST, "knownknown12", SECRET)
    assert await status_of(authenticator, f"Bearer {key}") == 200


async def test_failures_from_many_addresses_keep_a_bounded_memory() -> None:
    authenticator = Authenticator(Pool())  # type: ignore[arg-type]
    for i in range(MAX_ADDRESSES + 500):
        await status_of(authenticator, None, address=f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}")
    assert len(authenticator._failures) == MAX_ADDRESSES


async def test_a_key_announced_by_postgresql_is_looked_up_and_a_revocation_is_seen_at_once(
) -> None:
    pool = Pool()
    authenticator = Authenticator(pool)  # type: ignore[arg-type]
    key = "Bearer " + format_key(Scope.INGEST, "knownknown12", SECRET)
    for _ in range(LOOKUP_BURST + 1):  # spend the trickle: unknown ids get no lookup now
        await status_of(authenticator, "Bearer " + format_key(Scope.INGEST, "unknownunkno",
                                                               SECRET))
    spent = pool.lookups
    pool.rows["knownknown12"] = a_row()
    assert await status_of(authenticator, key) == 401  # created, not announced yet
    authenticator._changed(None, 0, "parcours_keys", "knownknown12")
    assert await status_of(authenticator, key) == 200
    assert await status_of(authenticator, key) == 200  # cached: one lookup
    assert pool.lookups == spent + 1
    pool.rows["knownknown12"] = a_row(revoked=True)
    authenticator._changed(None, 0, "parcours_keys", "knownknown12")
    assert await status_of(authenticator, key) == 401


def test_a_bucket_can_be_checked_for_several_tokens_without_taking_any() -> None:
    bucket = Bucket(3, 0.0)
    assert available(bucket, 0.0, rate=1, burst=10, need=3)
    assert not available(bucket, 0.0, rate=1, burst=10, need=4)
    assert available(bucket, 1.0, rate=1, burst=10, need=4)  # refilled meanwhile
    assert available(None, 0.0, rate=1, burst=10) and bucket.tokens == 3
