"""A message's timeline marks: the processor's header and the stage durations."""

import math

import pytest

from shared.domain import timeline


def test_header_round_trip_keeps_microseconds() -> None:
    marks = (1764822000.123456, 1764822000.125001, 1764822000.1275)
    assert timeline.decode(timeline.encode(marks)) == marks


def test_a_missing_or_bad_header_is_nan_never_an_error() -> None:
    assert all(math.isnan(m) for m in timeline.from_headers(None))
    assert all(math.isnan(m) for m in timeline.from_headers([("other", b"1,2,3")]))
    bad = timeline.decode(b"1.5,x")
    assert bad[0] == 1.5 and math.isnan(bad[1]) and math.isnan(bad[2])
    assert len(timeline.decode(b"1,2,3,4,5")) == len(timeline.PROCESSOR_STAGES)


def test_durations_are_from_the_stage_before_and_skip_unknown_ones() -> None:
    marks = (10.0, 10.004, math.nan, 10.010, 10.012)
    assert timeline.durations(marks) == {"consumed": pytest.approx(0.004),
                                         "sender_consumed": pytest.approx(0.002)}
    assert list(timeline.durations(range(9))) == list(timeline.STAGES[1:])


def test_literal_is_a_postgresql_array_with_nulls() -> None:
    assert timeline.literal((1.0, math.nan, 2.5)) == "{1.000000,NULL,2.500000}"
