"""bench.stages' arithmetic: a message's stages from its trace row, and their summary."""

import math

import pytest

from bench.stages import stage_durations, stage_marks, summarize


def test_stages_come_from_the_timeline_and_the_rows_settled_time() -> None:
    marks = stage_marks([10.0, 10.002, 10.005, 10.006, 10.008, 10.009, 10.011, 10.015], 10.016)
    found = stage_durations(marks)
    assert found["consumed"] == pytest.approx(0.002)
    assert found["handed_over"] == pytest.approx(0.004)
    assert found["settled"] == pytest.approx(0.001)
    assert found["to_smtp"] == pytest.approx(0.015)


def test_an_unknown_stage_is_left_out_not_counted_as_zero() -> None:
    marks = stage_marks([10.0, None, 10.005, 10.006, 10.008, 10.009, 10.011, 10.015], 10.02)
    assert math.isnan(marks[1])
    found = stage_durations(marks)
    assert "consumed" not in found and "decided" not in found
    summary = summarize([marks, stage_marks([20.0, 20.001, 20.002, 20.003, 20.004, 20.005,
                                             20.006, 20.007], 20.008)])
    assert summary["consumed"]["count"] == 1
    assert summary["to_smtp"]["count"] == 2
