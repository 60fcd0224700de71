import pytest

from shared.domain.api_keys import Scope, format_key, parse_key, secret_digest, secret_matches
from shared.domain.rate_limit import Bucket, take

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
