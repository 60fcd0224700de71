"""What the garbage collector walks and how often: a service's start-up is frozen once
(no full collection walks it again) and the young are collected every 10,000
allocations."""

from __future__ import annotations

import gc

from shared import heap


def test_settling_freezes_the_start_up_and_collects_the_young_less_often() -> None:
    before, thresholds = gc.get_freeze_count(), gc.get_threshold()
    try:
        heap.settle()
        assert gc.get_freeze_count() > before
        assert gc.get_count()[0] < 10  # collected just before: nothing young left over
        assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, *thresholds[1:])
    finally:
        gc.unfreeze()  # the test process's own objects go back to the collector
        gc.set_threshold(*thresholds)
