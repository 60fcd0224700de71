"""The retry schedule's backoff: exponential, capped, jittered within bounds, limited."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.retry_backoff import RetryPolicy


def test_delays_double_from_the_first_up_to_the_cap() -> None:
    policy = RetryPolicy(first_delay_s=5, max_delay_s=60, max_attempts=10, jitter=0)
    assert [policy.next_delay_s(n, 0.5) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


def test_equal_jitter_spans_half_the_base_to_the_base() -> None:
    policy = RetryPolicy(first_delay_s=10, max_delay_s=100, max_attempts=10, jitter=0.5)
    assert policy.next_delay_s(2, 0.0) == 10  # base 20
    assert policy.next_delay_s(2, 0.999999) == pytest.approx(20, abs=1e-4)


def test_the_limit_counts_every_hand_over_the_first_included() -> None:
    policy = RetryPolicy(first_delay_s=1, max_delay_s=10, max_attempts=3)
    assert policy.next_delay_s(1, 0.3) is not None
    assert policy.next_delay_s(2, 0.3) is not None
    assert policy.next_delay_s(3, 0.3) is None
    assert policy.next_delay_s(400, 0.3) is None


def test_one_attempt_means_no_retry() -> None:
    assert RetryPolicy(max_attempts=1).next_delay_s(1, 0.5) is None


def test_the_defaults_keep_trying_for_most_of_a_day() -> None:
    hours = RetryPolicy().longest_s() / 3600
    assert 19 < hours < 24


@pytest.mark.parametrize("kwargs", [
    {"first_delay_s": 0}, {"first_delay_s": 10, "max_delay_s": 5}, {"max_attempts": 0},
    {"jitter": 1.5}, {"jitter": -0.1},
])
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@given(first=st.floats(0.01, 100), cap_factor=st.floats(1, 10_000),
       attempts=st.integers(1, 10_000), draw=st.floats(0, 1), jitter=st.floats(0, 1))
def test_every_delay_is_within_half_the_base_and_the_cap(
    first: float, cap_factor: float, attempts: int, draw: float, jitter: float
) -> None:
    policy = RetryPolicy(first_delay_s=first, max_delay_s=first * cap_factor,
                         max_attempts=10_001, jitter=jitter)
    delay = policy.next_delay_s(attempts, draw)
    assert delay is not None
    base = policy.base_delay_s(attempts)
    assert base * (1 - jitter) - 1e-9 <= delay <= base + 1e-9
    assert delay <= policy.max_delay_s + 1e-9
    assert delay >= min(first, policy.max_delay_s) * (1 - jitter) - 1e-9


@given(attempts=st.integers(1, 200))
def test_the_base_never_shrinks_as_attempts_grow(attempts: int) -> None:
    policy = RetryPolicy(first_delay_s=0.5, max_delay_s=900, max_attempts=1_000)
    assert policy.base_delay_s(attempts + 1) >= policy.base_delay_s(attempts)
