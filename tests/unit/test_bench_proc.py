"""The pure helpers P2, P3, P10 and B3 add to bench.stats: /proc parsing, CPU per item,
the busiest process, when a count reached its target, peaks per process."""

from __future__ import annotations

import pytest

from bench.stats import (
    busiest,
    cpu_per_item_us,
    max_by_name,
    reached_at,
    stat_cpu_ticks,
    status_rss_kb,
)

# /proc/<pid>/stat of a process whose name holds a space and a parenthesis: utime 1500,
# stime 250 (fields 14 and 15).
STAT = ("4242 (python (x) y) S 1 4242 4242 0 -1 4194560 25000 0 0 0 1500 250 0 0 20 0 "
        "7 0 1234 300000000 20000 18446744073709551615 1 1 0 0 0 0 0 16781312 17642 0 0 0 "
        "17 1 0 0 0 0 0")


def test_cpu_ticks_are_utime_plus_stime_counted_after_the_name() -> None:
    assert stat_cpu_ticks(STAT) == 1750


def test_rss_is_read_from_vmrss() -> None:
    status = "Name:\tpython\nVmPeak:\t  400000 kB\nVmRSS:\t   81234 kB\nRssAnon:\t 70000 kB\n"
    assert status_rss_kb(status) == 81234


def test_a_kernel_thread_has_no_rss() -> None:
    assert status_rss_kb("Name:\tkthreadd\nState:\tS (sleeping)\n") is None


def test_cpu_per_item_in_microseconds() -> None:
    assert cpu_per_item_us(10.0, 10.5, 1000) == pytest.approx(500.0)


@pytest.mark.parametrize(("before", "after", "items"), [
    (None, 1.0, 10), (1.0, None, 10), (1.0, 2.0, 0), (5.0, 1.0, 10)])
def test_cpu_per_item_is_none_when_it_cannot_be_told(
        before: float | None, after: float | None, items: int) -> None:
    # a missing reading, nothing handled, or a restarted process (its CPU time went back)
    assert cpu_per_item_us(before, after, items) is None


def test_busiest_is_the_largest_share_of_a_core() -> None:
    assert busiest({"gateway": 9.0, "processor": 4.0, "kafka": None}, 10.0) == (
        "gateway", pytest.approx(0.9))


def test_busiest_without_readings_or_time() -> None:
    assert busiest({"gateway": None}, 10.0) is None
    assert busiest({"gateway": 1.0}, 0.0) is None


def test_reached_at_interpolates_between_the_polls_around_the_target() -> None:
    polls = [(0.5, 0.0), (1.0, 400.0), (1.5, 800.0), (2.0, 1200.0)]
    assert reached_at(polls, 1000.0) == pytest.approx(1.75)


def test_reached_at_a_poll_exactly() -> None:
    assert reached_at([(1.0, 10.0), (2.0, 20.0)], 20.0) == 2.0


def test_reached_at_the_first_poll_when_already_there() -> None:
    assert reached_at([(0.25, 50.0), (0.5, 60.0)], 40.0) == 0.25


def test_reached_at_never() -> None:
    assert reached_at([(1.0, 10.0), (2.0, 19.0)], 20.0) is None
    assert reached_at([], 1.0) is None


def test_max_by_name_over_samples_skipping_missing_readings() -> None:
    samples = [{"gateway": 70.0, "processor": None}, {"gateway": 90.0, "processor": 80.0},
               {"gateway": 85.0, "admin": 200.0}]
    assert max_by_name(samples) == {"gateway": 90.0, "processor": 80.0, "admin": 200.0}
