"""Consumer lag: how many records each consumer group has still to read, per topic, from
the offsets it committed and the topics' start and end offsets. Pure; the offsets are read
by shared/adapters/consumer_offsets.py and the figures exported by services/reactions/lag.py.

Labels stay bounded: a group is one of the catalogue's (shared/consumer_groups.py), a
topic one its catalogue entry names, else ``other``; groups the catalogue does not know are
only counted."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

OTHER = "other"
Partition = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True)
class ConsumerGroup:
    name: str
    topics: tuple[str, ...]
    # Where the group starts on a partition it has no committed offset for (its consumer's
    # auto_offset_reset): from the start, every record there is still to read; from the end
    # (``False``), none is.
    from_start: bool = True


@dataclass(frozen=True)
class Lag:
    group: str
    topic: str  # a catalogue topic of the group, or OTHER
    records: int  # still to read, summed over partitions
    max_partition: int  # the most any one partition has still to read
    position: int  # where the group stands, summed over partitions: moves while it reads


@dataclass(frozen=True)
class Offsets:
    """What the broker said in one poll."""
    groups: frozenset[str]  # every group the broker lists
    # By catalogue group; a group missing here was not answered for (it is skipped this
    # poll), one with no offsets has committed none (it reads from where it would start).
    committed: Mapping[str, Mapping[Partition, int]]
    starts: Mapping[Partition, int]  # log start offsets
    ends: Mapping[Partition, int]  # end offsets (the next offset to be written)


def measure_lag(catalogue: Iterable[ConsumerGroup], offsets: Offsets) -> list[Lag]:
    """One ``Lag`` per catalogue group and topic label, sorted; a topic the group commits
    offsets for but the catalogue does not name counts under ``other``."""
    sums: dict[tuple[str, str], list[int]] = {}
    for group in catalogue:
        committed = offsets.committed.get(group.name)
        if committed is None:
            continue
        for partition in _partitions(group.topics, committed, offsets.ends):
            label = partition[0] if partition[0] in group.topics else OTHER
            behind, position = _partition_lag(group, committed.get(partition), partition,
                                              offsets)
            total = sums.setdefault((group.name, label), [0, 0, 0])
            total[0] += behind
            total[1] = max(total[1], behind)
            total[2] += position
    return [Lag(group, topic, *figures) for (group, topic), figures in sorted(sums.items())]


def unknown_groups(catalogue: Iterable[ConsumerGroup], listed: Collection[str]) -> int:
    """How many groups the broker lists that the catalogue does not know (tools, tests,
    groups of retired services): counted, never named in a label."""
    return len(set(listed) - {group.name for group in catalogue})


def _partitions(topics: Collection[str], committed: Mapping[Partition, int],
                ends: Mapping[Partition, int]) -> list[Partition]:
    ours = {p for p in ends if p[0] in topics}
    return sorted(ours | {p for p in committed if p in ends})


def _partition_lag(group: ConsumerGroup, committed: int | None, partition: Partition,
                   offsets: Offsets) -> tuple[int, int]:
    end = offsets.ends[partition]
    start = offsets.starts.get(partition, 0)
    if committed is None or committed < 0:
        position = start if group.from_start else end
    else:
        position = max(committed, start)  # records removed by retention are not to read
    return max(0, end - position), position
