"""Consumer lag from offsets (shared/domain/consumer_lag.py), and the catalogue of groups
(shared/consumer_groups.py) against the groups the services name."""

from __future__ import annotations

import re
from pathlib import Path

from shared.consumer_groups import CONSUMER_GROUPS
from shared.domain.consumer_lag import (
    OTHER,
    ConsumerGroup,
    Lag,
    Offsets,
    measure_lag,
    unknown_groups,
)
from shared.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parents[2]
SENDER = ConsumerGroup("g", ("t",))
LATE = ConsumerGroup("late", ("t",), from_start=False)


def offsets(committed: dict[str, dict[tuple[str, int], int]],
            ends: dict[tuple[str, int], int],
            starts: dict[tuple[str, int], int] | None = None) -> Offsets:
    return Offsets(frozenset(committed), committed, starts or {}, ends)


def test_lag_is_end_minus_committed_summed_with_the_largest_partition() -> None:
    got = measure_lag([SENDER], offsets({"g": {("t", 0): 10, ("t", 1): 7}},
                                        {("t", 0): 12, ("t", 1): 17}))
    assert got == [Lag("g", "t", records=12, max_partition=10, position=17)]


def test_a_partition_never_committed_counts_from_where_the_group_would_start() -> None:
    ends, starts = {("t", 0): 50, ("t", 1): 30}, {("t", 0): 20, ("t", 1): 0}
    [early] = measure_lag([SENDER], offsets({"g": {("t", 1): 30}}, ends, starts))
    assert (early.records, early.max_partition, early.position) == (30, 30, 50)
    [late] = measure_lag([LATE], offsets({"late": {}}, ends, starts))
    assert (late.records, late.position) == (0, 80)


def test_a_group_not_answered_for_is_skipped_this_poll() -> None:
    state = Offsets(frozenset({"g"}), {}, {}, {("t", 0): 9})
    assert measure_lag([SENDER], state) == []


def test_records_removed_by_retention_are_not_lag() -> None:
    [lag] = measure_lag([SENDER], offsets({"g": {("t", 0): 5}}, {("t", 0): 100},
                                          {("t", 0): 60}))
    assert (lag.records, lag.position) == (40, 60)


def test_a_topic_outside_the_groups_catalogue_entry_counts_as_other() -> None:
    got = measure_lag([SENDER], offsets(
        {"g": {("t", 0): 1, ("elsewhere", 0): 2, ("x.y", 3): 0}},
        {("t", 0): 1, ("elsewhere", 0): 5, ("x.y", 3): 4}))
    assert got == [Lag("g", OTHER, 7, 4, 2), Lag("g", "t", 0, 0, 1)]


def test_groups_outside_the_catalogue_are_only_counted() -> None:
    state = Offsets(frozenset({"g", "stray", "tool"}),
                    {"g": {("t", 0): 0}, "stray": {("t", 0): 0}}, {}, {("t", 0): 9})
    assert {lag.group for lag in measure_lag([SENDER], state)} == {"g"}
    assert unknown_groups([SENDER], state.groups) == 2


def test_a_deleted_topic_and_a_committed_offset_past_the_end_measure_nothing_wrong() -> None:
    got = measure_lag([SENDER], offsets({"g": {("t", 0): 9, ("gone", 0): 3}}, {("t", 0): 4}))
    assert got == [Lag("g", "t", 0, 0, 9)]


# --- the catalogue ------------------------------------------------------------------------

GROUP_LITERAL = re.compile(r'"(parcours-[a-z0-9-]+)"')


def groups_named_in_services() -> set[str]:
    """Every "parcours-…" string literal in services/: consumer group names (a Faust app's
    id is its group) — this fails the day a service names a new group the catalogue lacks."""
    return {name for path in (ROOT / "services").rglob("*.py")
            for name in GROUP_LITERAL.findall(path.read_text())}


def test_the_catalogue_lists_every_group_the_services_name() -> None:
    catalogue = {group.name for group in CONSUMER_GROUPS}
    assert len(catalogue) == len(CONSUMER_GROUPS)
    assert groups_named_in_services() == catalogue


def test_the_catalogue_names_only_catalogue_topics() -> None:
    topics = {topic.name for topic in ALL_TOPICS}
    for group in CONSUMER_GROUPS:
        assert group.topics and set(group.topics) <= topics, group.name
