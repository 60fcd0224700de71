"""Pure helpers for benchmark figures: percentiles, medians, ratios, Prometheus histograms,
and one timer of a call's CPU.

No I/O here, so ``tests/unit/test_bench_stats.py`` can check them without the stack.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100), linear between closest ranks (numpy's default), so
    p50 of an even-sized sample is the mean of the middle two, like ``median``."""
    if not values:
        raise ValueError("percentile of an empty sample")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds, and the sample size."""
    if not seconds:
        return {"count": 0}
    return {
        "count": len(seconds),
        "p50_ms": percentile(seconds, 50) * 1000,
        "p95_ms": percentile(seconds, 95) * 1000,
        "p99_ms": percentile(seconds, 99) * 1000,
        "max_ms": max(seconds) * 1000,
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """None rather than a division error when either side is missing or zero."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def median_of(runs: Iterable[dict[str, float]], key: str) -> float | None:
    """Median of one figure over the runs that have it (a failed run has none)."""
    values = [run[key] for run in runs if run.get(key) is not None]
    return median(values) if values else None


# --- Prometheus text format --------------------------------------------------------------

_SAMPLE = re.compile(r'^(?P<name>[A-Za-z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def prometheus_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of metric ``name`` (exact) with its labels."""
    samples = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match["name"] == name:
            labels = dict(_LABEL.findall(match["labels"] or ""))
            samples.append((labels, float(match["value"])))
    return samples


def histogram_buckets(
    text: str, name: str, labels: dict[str, str] | None = None
) -> list[tuple[float, float]]:
    """Cumulative ``(le, count)`` pairs of histogram ``name``, sorted by ``le``; series
    whose labels do not match ``labels`` are skipped."""
    wanted = labels or {}
    buckets = []
    for sample_labels, value in prometheus_samples(text, f"{name}_bucket"):
        if all(sample_labels.get(k) == v for k, v in wanted.items()):
            buckets.append((float(sample_labels["le"]), value))
    return sorted(buckets)


def bucket_delta(
    before: list[tuple[float, float]], after: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """What was observed between two scrapes (a counter that was absent counts from 0)."""
    earlier = dict(before)
    return [(le, count - earlier.get(le, 0.0)) for le, count in after]


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' estimate of quantile q (0–1) from cumulative buckets: linear inside
    the bucket that holds the rank; the upper bound of the last finite bucket if the rank
    falls in +Inf. None when nothing was observed."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower_bound
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return lower_bound


# --- /proc figures (the text is read by bench.common; parsed here) ------------------------

def stat_cpu_ticks(stat: str) -> int:
    """utime + stime, in clock ticks, from the text of ``/proc/<pid>/stat``. The command
    name (field 2, in parentheses) may hold spaces and parentheses: fields are counted from
    the last ``)``."""
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def status_rss_kb(status: str) -> int | None:
    """VmRSS in kB from the text of ``/proc/<pid>/status`` (None for a kernel thread or a
    zombie, which have none)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def cpu_per_item_us(cpu_s_before: float | None, cpu_s_after: float | None,
                    items: int) -> float | None:
    """CPU µs a process spent per item between two readings; None when a reading is
    missing, when nothing was handled, or when the clock went back (another pid: the
    process was restarted meanwhile)."""
    if cpu_s_before is None or cpu_s_after is None or items <= 0:
        return None
    if cpu_s_after < cpu_s_before:
        return None
    return (cpu_s_after - cpu_s_before) / items * 1e6


def busiest(cpu_s: dict[str, float | None], wall_s: float) -> tuple[str, float] | None:
    """The process that used the largest share of one core over ``wall_s`` (CPU seconds /
    wall seconds: 1.0 is a core saturated, the limit for a single-threaded Python service),
    and that share; None when no process has a reading."""
    if wall_s <= 0:
        return None
    shares = {name: used / wall_s for name, used in cpu_s.items() if used is not None}
    if not shares:
        return None
    name = max(shares, key=lambda n: shares[n])
    return name, shares[name]


def reached_at(samples: Sequence[tuple[float, float]], target: float) -> float | None:
    """When a growing count first reached ``target``, from ``(time, count)`` polls:
    linear between the last poll below it and the first at or above it (the count grew
    somewhere in between), the first poll's time if it was already there; None if no
    poll reached it."""
    previous: tuple[float, float] | None = None
    for at, count in samples:
        if count >= target:
            if previous is None or count == previous[1]:
                return at
            t0, c0 = previous
            return t0 + (at - t0) * (target - c0) / (count - c0)
        previous = (at, count)
    return None


def max_by_name(samples: Iterable[dict[str, float | None]]) -> dict[str, float]:
    """Each name's largest value over the samples (names missing from a sample, or None
    there, are skipped)."""
    peak: dict[str, float] = {}
    for sample in samples:
        for name, value in sample.items():
            if value is not None and (name not in peak or value > peak[name]):
                peak[name] = value
    return peak


def cpu_us_per_call(work: Callable[[], object], calls: int, runs: int = 7) -> float:
    """CPU µs per call of ``work``, this process's alone (time.process_time), the best of
    ``runs`` runs: what the machine's other load takes away shows in neither."""
    timings = []
    for _ in range(runs):
        start = time.process_time()
        for _ in range(calls):
            work()
        timings.append((time.process_time() - start) / calls * 1e6)
    return min(timings)
