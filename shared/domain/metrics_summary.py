"""The services' metrics summed up by minute, for the console's operations page (the admin
API's ``GET /admin/v1/metrics/summary``). Pure: the admin service's sampler
(services/admin/metrics_summary.py) scrapes each service's ``/metrics`` and gives the text
to ``parse``; the scrapes are kept in a ``Ring`` (an hour); ``summarise`` turns them into
per-minute series.

Only the series the summary reads are parsed (``WANTED``: a line's metric name is checked
before the text parser sees it), so a scrape of 15 services costs little. Counters become
their increase per minute: between two scrapes of a service, the later value less the
earlier; a counter that went down, or a process that started again (its
``process_start_time_seconds`` changed), counted from 0, so the increase is the later
value; a series that was not there before (a label value seen for the first time) too.
An increase belongs to the minute of the later scrape. A minute is ``None`` in every
series when no scrape pair ended in it (the sampler was not running); a service that did
not answer has no pair across its silence, and its increase comes with its next answer.
Gauges (consumer lag) are the most of the minute's scrapes.

Metrics are the whole system's: every tenant's traffic together.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]  # sample name, its labels sorted
Values = dict[SeriesKey, float]

START = "process_start_time_seconds"
ACCEPTED = "parcours_gateway_events_accepted_total"  # answered 202
REJECTED = "parcours_gateway_events_rejected_total"  # {reason}
KAFKA_EVENTS = "parcours_processor_kafka_events_total"  # {outcome}: produced to Kafka
PROCESSOR_EVENTS = "parcours_processor_events_total"  # {status}: what the processor wrote
SENT = "parcours_sender_sent_total"  # {channel, priority}: the provider accepted it
FAILED = "parcours_sender_failed_total"  # {channel, reason}: failed for good
DEADLETTERS = {"processor": "parcours_processor_deadletter_total",  # {reason}
               "profileIngest": "parcours_profile_ingest_deadletter_total"}
LAG = "parcours_kafka_consumer_lag_records"  # gauge {group, topic} (the reactions service)
WANTED = frozenset({START, ACCEPTED, REJECTED, KAFKA_EVENTS, PROCESSOR_EVENTS, SENT, FAILED,
                    LAG, *DEADLETTERS.values()})
CHANNELS = ("email", "sms", "push")  # shared.domain.events.Channel's values
MINUTE = 60.0
HORIZON_S = 3600.0


def _name(line: str) -> str:
    end = len(line)
    for stop in ("{", " "):
        found = line.find(stop)
        if 0 <= found < end:
            end = found
    return line[:end]


def parse(text: str, wanted: frozenset[str] = WANTED) -> Values:
    """The ``wanted`` samples of a Prometheus text exposition (comments and every other
    series left out before parsing: they are most of the text)."""
    kept = [line for line in text.splitlines() if line and line[0] != "#"
            and _name(line) in wanted]
    values: Values = {}
    if not kept:
        return values
    for family in text_string_to_metric_families("\n".join(kept) + "\n"):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return values


@dataclass(frozen=True)
class Scrape:
    at: float  # unix seconds
    values: Values | None  # None: the service did not answer


@dataclass
class Ring:
    """Each service's scrapes over the last ``horizon_s``: at most horizon / interval + 2
    a service, whatever runs how long."""

    interval_s: float
    horizon_s: float = HORIZON_S
    _scrapes: dict[str, deque[Scrape]] = field(default_factory=dict)
    # One copy of each series' key for every scrape: an hour of 14 services then holds
    # about 1.5 MB, not 4.5 (each scrape's parse makes its keys anew).
    _keys: dict[SeriesKey, SeriesKey] = field(default_factory=dict)

    @property
    def capacity(self) -> int:
        return math.ceil(self.horizon_s / self.interval_s) + 2

    def add(self, service: str, scrape: Scrape) -> None:
        if scrape.values is not None:
            scrape = Scrape(scrape.at, {self._keys.setdefault(key, key): value
                                        for key, value in scrape.values.items()})
        self._scrapes.setdefault(service, deque(maxlen=self.capacity)).append(scrape)

    def history(self) -> dict[str, list[Scrape]]:
        return {service: list(scrapes) for service, scrapes in self._scrapes.items()}


def minute_starts(now: float, minutes: int) -> list[float]:
    """The start of each of the last ``minutes`` minutes, oldest first; the last is the
    minute ``now`` is in (so far)."""
    current = math.floor(now / MINUTE) * MINUTE
    return [current - MINUTE * (minutes - 1 - i) for i in range(minutes)]


@dataclass(frozen=True)
class Increase:
    at: float  # the later scrape's time
    key: SeriesKey
    value: float


def _start(values: Values) -> float | None:
    return values.get((START, ()))


def increases(scrapes: Sequence[Scrape]) -> tuple[list[Increase], list[float]]:
    """The counters' increases between one service's consecutive answered scrapes, and
    the times of the later scrape of each pair (which minutes had a pair)."""
    found: list[Increase] = []
    pairs: list[float] = []
    before: Values | None = None
    for scrape in scrapes:
        if scrape.values is None:
            continue
        if before is not None:
            pairs.append(scrape.at)
            restarted = _start(before) != _start(scrape.values)
            for key, value in scrape.values.items():
                if key[0] == START or key[0] == LAG:
                    continue
                previous = before.get(key)
                if restarted or previous is None or value < previous:
                    delta = value
                else:
                    delta = value - previous
                if delta:
                    found.append(Increase(scrape.at, key, delta))
        before = scrape.values
    return found, pairs


def _index(starts: Sequence[float], at: float) -> int | None:
    if not starts or at < starts[0] or at >= starts[-1] + MINUTE:
        return None
    return int((at - starts[0]) // MINUTE)


Series = dict[str, list[float | None]]


def _series(increases: Iterable[Increase], starts: Sequence[float], covered: list[bool],
            name: str, label: Callable[[dict[str, str]], str | None],
            present: Iterable[SeriesKey] = ()) -> Series:
    """Per-minute sums of the increases of ``name``'s series, by ``label`` (None: left
    out); 0 in a covered minute without any, None in one not covered. A series of
    ``present`` (the latest scrapes' keys) is there even without an increase: a channel
    without traffic is a line of zeros, not a missing line."""
    out: Series = {}
    for key in present:
        if key[0] == name and (series := label(dict(key[1]))) is not None:
            out.setdefault(series, [0.0 if c else None for c in covered])
    for increase in increases:
        if increase.key[0] != name:
            continue
        series = label(dict(increase.key[1]))
        i = _index(starts, increase.at)
        if series is None or i is None:
            continue
        values = out.setdefault(series, [0.0 if c else None for c in covered])
        values[i] = (values[i] or 0.0) + increase.value
    return out


def _merge(*groups: Series) -> Series:
    merged: Series = {}
    for group in groups:
        for name, values in group.items():
            if name not in merged:
                merged[name] = list(values)
            else:
                merged[name] = [None if a is None and b is None else (a or 0.0) + (b or 0.0)
                                for a, b in zip(merged[name], values, strict=True)]
    return merged


@dataclass(frozen=True)
class Summary:
    starts: list[float]  # each minute's start, oldest first
    covered: list[bool]  # whether the sampler saw that minute
    throughput: Series  # accepted (gateway 202), rejected (gateway 4xx/5xx), kafka (admitted)
    statuses: Series  # by status: the processor's, with the senders' processed, deliveryFailed
    sent: Series  # by channel
    failed: Series  # by channel
    dead_letters: Series  # by service (processor, profileIngest)
    lag_now: dict[str, float]  # by consumer group, the latest scrape's sum over its topics
    lag: Series  # by consumer group, the most of the minute's scrapes


def _lag_by_group(values: Values) -> dict[str, float]:
    by_group: dict[str, float] = {}
    for (name, labels), value in values.items():
        if name == LAG:
            group = dict(labels).get("group", "")
            by_group[group] = by_group.get(group, 0.0) + value
    return by_group


def summarise(history: Mapping[str, Sequence[Scrape]], now: float, minutes: int) -> Summary:
    """The per-minute series of the last ``minutes`` minutes from each service's scrapes
    (a service's name → its scrapes, oldest first)."""
    starts = minute_starts(now, minutes)
    covered = [False] * minutes
    found: list[Increase] = []
    for scrapes in history.values():
        service_increases, pairs = increases(scrapes)
        found.extend(service_increases)
        for at in pairs:
            if (i := _index(starts, at)) is not None:
                covered[i] = True

    present: set[SeriesKey] = set()
    for scrapes in history.values():
        last = next((s.values for s in reversed(scrapes) if s.values is not None), None)
        present.update(last or ())

    def one(name: str, series: str) -> Series:
        return _series(found, starts, covered, name, lambda _labels: series, present)

    def by(name: str, label: str) -> Series:
        return _series(found, starts, covered, name, lambda labels: labels.get(label),
                       present)

    def zeros(*names: str) -> Series:  # lines that are there even before any traffic
        return {name: [0.0 if c else None for c in covered] for name in names}

    throughput = _merge(zeros("accepted", "rejected", "kafka"), one(ACCEPTED, "accepted"),
                        one(REJECTED, "rejected"),
                        _series(found, starts, covered, KAFKA_EVENTS,
                                lambda labels: "kafka" if labels.get("outcome") == "admitted"
                                else None, present))
    statuses = _merge(zeros("processed", "deliveryFailed"), by(PROCESSOR_EVENTS, "status"),
                      one(SENT, "processed"), one(FAILED, "deliveryFailed"))
    dead_letters = _merge(zeros(*DEADLETTERS),
                          *(one(name, source) for source, name in DEADLETTERS.items()))
    channels = zeros(*CHANNELS)

    lag: Series = {}
    lag_now: dict[str, float] = {}
    latest = -math.inf
    for scrapes in history.values():
        for scrape in scrapes:
            if scrape.values is None or not any(k[0] == LAG for k in scrape.values):
                continue
            groups = _lag_by_group(scrape.values)
            if scrape.at >= latest:
                latest, lag_now = scrape.at, groups
            if (i := _index(starts, scrape.at)) is None:
                continue
            for group, value in groups.items():
                values = lag.setdefault(group, [None] * minutes)
                values[i] = value if values[i] is None else max(values[i] or 0.0, value)
    return Summary(starts, covered, throughput, statuses, _merge(channels, by(SENT, "channel")),
                   _merge(channels, by(FAILED, "channel")), dead_letters, lag_now, lag)
