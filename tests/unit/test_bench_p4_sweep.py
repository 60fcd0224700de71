"""P4MAX's judgement of a sustained rate (bench/p4_sweep.py)."""

import math

from bench.p4_sweep import sustained, to_smtp_by_quarter


def marks(pairs: list[tuple[float, float]]) -> list[list[float]]:
    """(accepted, handed over) as the timelines' first and eighth marks."""
    return [[a, *([a] * 6), h, h] for a, h in pairs]


def test_a_steady_latency_is_sustained_and_a_growing_one_is_not() -> None:
    steady = to_smtp_by_quarter(marks([(t / 10, t / 10 + 0.02) for t in range(100)]))
    growing = to_smtp_by_quarter(marks([(t / 10, t / 10 + 0.02 + t * 0.01)
                                        for t in range(100)]))
    assert steady is not None and growing is not None
    assert sustained(300, 299, 100, 100, steady)
    assert not sustained(300, 299, 100, 100, growing)


def test_a_rate_the_gateway_did_not_take_or_a_message_not_handed_over_is_not() -> None:
    quarters = to_smtp_by_quarter(marks([(t / 10, t / 10 + 0.02) for t in range(100)]))
    assert not sustained(300, 250, 100, 100, quarters)
    assert not sustained(300, 299, 99, 100, quarters)


def test_messages_not_handed_over_are_left_out_and_too_few_say_nothing() -> None:
    few = marks([(t, t + 0.01) for t in range(7)]) + marks([(8, math.nan)])
    assert to_smtp_by_quarter(few) is None
    assert not sustained(300, 300, 8, 8, None)
