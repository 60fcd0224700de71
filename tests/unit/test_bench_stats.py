"""The benchmark's pure helpers: percentiles, ratios, Prometheus histograms, wrk output."""

from __future__ import annotations

import math

import pytest

from bench.common import EMAIL_TX, SENDER_LATENCY
from bench.stats import (
    bucket_delta,
    histogram_buckets,
    histogram_quantile,
    latency_summary,
    median,
    median_of,
    percentile,
    prometheus_samples,
    ratio,
)
from bench.wrk import parse_wrk


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 25) == pytest.approx(1.75)


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.0], 99) == 7.0


def test_p99_of_a_hundred_values() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 99) == pytest.approx(99.01)


@pytest.mark.parametrize("q", [-1, 101])
def test_percentile_rejects_out_of_range(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], q)


def test_percentile_rejects_empty() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


def test_median_odd_and_even() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5


def test_median_of_skips_runs_without_the_figure() -> None:
    runs = [{"rate": 10.0}, {"rate": None}, {}, {"rate": 30.0}, {"rate": 20.0}]
    assert median_of(runs, "rate") == 20.0
    assert median_of([{}], "rate") is None


def test_latency_summary_in_milliseconds() -> None:
    summary = latency_summary([0.001 * i for i in range(1, 101)])
    assert summary["count"] == 100
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p99_ms"] == pytest.approx(99.01)
    assert summary["max_ms"] == pytest.approx(100.0)
    assert latency_summary([]) == {"count": 0}


def test_ratio_is_none_when_a_side_is_missing() -> None:
    assert ratio(3.0, 4.0) == 0.75
    assert ratio(None, 4.0) is None
    assert ratio(3.0, None) is None
    assert ratio(3.0, 0.0) is None


METRICS = """\
# HELP parcours_sender_accepted_to_provider_seconds From gateway acceptance
# TYPE parcours_sender_accepted_to_provider_seconds histogram
parcours_sender_accepted_to_provider_seconds_bucket{channel="email",le="0.01",priority="tx"} 10.0
parcours_sender_accepted_to_provider_seconds_bucket{channel="email",le="0.05",priority="tx"} 90.0
parcours_sender_accepted_to_provider_seconds_bucket{channel="email",le="0.1",priority="tx"} 100.0
parcours_sender_accepted_to_provider_seconds_bucket{channel="email",le="+Inf",priority="tx"} 100.0
parcours_sender_accepted_to_provider_seconds_bucket{channel="email",le="0.01",priority="bulk"} 5.0
parcours_sender_accepted_to_provider_seconds_bucket{channel="email",le="+Inf",priority="bulk"} 5.0
parcours_sender_accepted_to_provider_seconds_bucket{channel="sms",le="0.01",priority="tx"} 7.0
parcours_sender_accepted_to_provider_seconds_bucket{channel="sms",le="+Inf",priority="tx"} 7.0
parcours_sender_accepted_to_provider_seconds_count{channel="email",priority="tx"} 100.0
parcours_smtp_sink_received_total 315.0
"""


def test_prometheus_samples_by_exact_name() -> None:
    assert prometheus_samples(METRICS, "parcours_smtp_sink_received_total") == [({}, 315.0)]
    count = prometheus_samples(METRICS, "parcours_sender_accepted_to_provider_seconds_count")
    assert count == [({"channel": "email", "priority": "tx"}, 100.0)]


def test_histogram_buckets_filter_labels_and_sort() -> None:
    buckets = histogram_buckets(METRICS, SENDER_LATENCY, EMAIL_TX)
    assert buckets == [(0.01, 10.0), (0.05, 90.0), (0.1, 100.0), (math.inf, 100.0)]
    assert histogram_buckets(METRICS, SENDER_LATENCY, {"channel": "sms"}) == [
        (0.01, 7.0), (math.inf, 7.0)]


def test_histogram_quantile_interpolates_inside_the_bucket() -> None:
    buckets = [(0.01, 10.0), (0.05, 90.0), (0.1, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.03)  # rank 50: 40/80 of 0.01..0.05
    assert histogram_quantile(0.05, buckets) == pytest.approx(0.005)  # first bucket from 0
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.095)


def test_histogram_quantile_in_the_inf_bucket_is_the_last_bound() -> None:
    assert histogram_quantile(0.99, [(0.1, 50.0), (math.inf, 100.0)]) == 0.1


def test_histogram_quantile_of_nothing_is_none() -> None:
    assert histogram_quantile(0.5, []) is None
    assert histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None


def test_bucket_delta_subtracts_the_earlier_scrape() -> None:
    before = [(0.1, 5.0), (math.inf, 7.0)]
    after = [(0.1, 8.0), (0.5, 2.0), (math.inf, 12.0)]
    assert bucket_delta(before, after) == [(0.1, 3.0), (0.5, 2.0), (math.inf, 5.0)]


WRK = """\
Running 10s test @ http://127.0.0.1:8000/v1/events/EVTbench
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.34ms    3.21ms  1.20s    80.00%
    Req/Sec     5.12k   300.00     5.50k    70.00%
  Latency Distribution
     50%  850.00us
     75%   13.00ms
     90%   15.00ms
     99%    1.20s
  51234 requests in 10.00s, 8.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 34
Requests/sec:   5123.40
Transfer/sec:      0.80MB
"""


def test_parse_wrk_counts_only_successful_answers() -> None:
    result = parse_wrk(WRK)
    assert result["requests"] == 51234
    assert result["errors"] == 34
    assert result["socket_errors"] == 3
    assert result["ok"] == 51200
    assert result["duration_s"] == 10.0
    assert result["ok_per_s"] == pytest.approx(5120.0)
    assert result["p50_ms"] == pytest.approx(0.85)
    assert result["p75_ms"] == pytest.approx(13.0)
    assert result["p99_ms"] == pytest.approx(1200.0)


def test_parse_wrk_without_errors_or_distribution() -> None:
    result = parse_wrk("  100 requests in 2.00s, 1.00KB read\nRequests/sec: 50.00\n")
    assert result["ok"] == 100
    assert result["ok_per_s"] == 50.0
    assert "p99_ms" not in result


def test_parse_wrk_rejects_other_text() -> None:
    with pytest.raises(ValueError):
        parse_wrk("unable to connect to 127.0.0.1:8000 Connection refused")
