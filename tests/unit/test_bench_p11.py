"""P11's readings of each worker's /metrics (bench/p11_scale_out.py), pure parts."""

from bench.p11_scale_out import counter, per_worker

METRICS = """# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
process_cpu_seconds_total 53.14
parcours_processor_events_total{status="processing"} 11454.0
parcours_processor_events_total{status="ignored"} 33.0
parcours_sender_sent_total{channel="email",priority="tx"} 54.0
parcours_sender_sent_total{channel="sms",priority="tx"} 7.0
parcours_sender_sent_total_created{channel="email",priority="tx"} 1.7e9
"""


def test_counter_sums_the_samples_whose_labels_match() -> None:
    assert counter(METRICS, "process_cpu_seconds_total") == 53.14
    assert counter(METRICS, "parcours_processor_events_total", 'status="processing"') == 11454
    assert counter(METRICS, "parcours_processor_events_total") == 11487
    assert counter(METRICS, "parcours_sender_sent_total", 'channel="email"') == 54
    assert counter(METRICS, "parcours_nothing_total") == 0


def test_per_worker_divides_each_workers_cpu_by_its_own_work() -> None:
    before = {"processor": (10.0, 100.0), "processor-2": (5.0, 0.0)}
    after = {"processor": (10.6, 1100.0), "processor-2": (5.5, 1000.0)}
    got = per_worker(before, after)
    assert got["processor"] == {"cpu_s": 0.6, "work": 1000.0, "cpu_us_per_message": 600.0}
    assert got["processor-2"]["cpu_us_per_message"] == 500.0
    idle = per_worker({"x": (1.0, 5.0)}, {"x": (1.2, 5.0)})
    assert idle["x"]["cpu_us_per_message"] == 0.0  # no work: no figure, not a division by 0
