"""The providers' circuit breaker: opens after N failures in a row, probes once after a
while (half-open), closes on the probe's success, opens again on its failure."""

import pytest

from shared.domain.circuit_breaker import BreakerState, CircuitBreaker


def test_closed_lets_everything_through_and_a_success_clears_the_count() -> None:
    breaker = CircuitBreaker(failure_threshold=3, open_s=10)
    breaker.failed(0)
    breaker.failed(0)
    breaker.succeeded()
    breaker.failed(0)
    breaker.failed(0)
    assert breaker.state is BreakerState.CLOSED and breaker.allow(1)


def test_n_failures_in_a_row_open_it_for_open_s() -> None:
    breaker = CircuitBreaker(failure_threshold=3, open_s=10)
    for _ in range(3):
        assert breaker.allow(100)
        breaker.failed(100)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow(100)
    assert not breaker.allow(109.9)


def test_after_open_s_one_probe_goes_and_no_other() -> None:
    breaker = CircuitBreaker(failure_threshold=1, open_s=10)
    breaker.failed(0)
    assert breaker.allow(10)  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow(10.5)
    assert not breaker.allow(15)


def test_the_probe_succeeding_closes_it() -> None:
    breaker = CircuitBreaker(failure_threshold=2, open_s=5)
    breaker.failed(0)
    breaker.failed(0)
    assert breaker.allow(6)
    breaker.succeeded()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow(6) and breaker.allow(6)
    breaker.failed(7)  # counting from nothing again
    assert breaker.state is BreakerState.CLOSED


def test_the_probe_failing_opens_it_again_for_open_s_from_then() -> None:
    breaker = CircuitBreaker(failure_threshold=2, open_s=5)
    breaker.failed(0)
    breaker.failed(0)
    assert breaker.allow(6)
    breaker.failed(6)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow(10.9)
    assert breaker.allow(11)


def test_a_lost_probe_is_replaced_after_open_s() -> None:
    breaker = CircuitBreaker(failure_threshold=1, open_s=5)
    breaker.failed(0)
    assert breaker.allow(5)  # the probe, never reported
    assert not breaker.allow(9)
    assert breaker.allow(10)


def test_late_failures_of_requests_sent_before_it_opened_do_not_extend_it() -> None:
    breaker = CircuitBreaker(failure_threshold=1, open_s=5)
    breaker.failed(0)
    breaker.failed(4)
    assert breaker.allow(5)


@pytest.mark.parametrize("kwargs", [{"failure_threshold": 0}, {"open_s": 0}])
def test_nonsense_breakers_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]
