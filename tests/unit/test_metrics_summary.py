"""The metrics summary's pure part (shared/domain/metrics_summary.py): parsing only the
series it reads, counter increases by minute with resets and restarts, gauges as the
minute's most, and the bounded ring."""

from __future__ import annotations

from shared.domain.metrics_summary import (
    ACCEPTED,
    LAG,
    PROCESSOR_EVENTS,
    SENT,
    START,
    Ring,
    Scrape,
    Values,
    increases,
    minute_starts,
    parse,
    summarise,
)

T0 = 1_800_000_000.0 - 1_800_000_000.0 % 60  # a minute's start

TEXT = """# HELP parcours_gateway_events_accepted_total Events answered 202
# TYPE parcours_gateway_events_accepted_total counter
parcours_gateway_events_accepted_total 5.0
# HELP parcours_gateway_events_accepted_created Events answered 202
parcours_gateway_events_accepted_created 1.7963844693518457e+09
parcours_sender_sent_total{channel="email",priority="tx"} 2.0
parcours_sender_sent_total{channel="email",priority="bulk"} 1.0
python_gc_objects_collected_total{generation="0"} 436.0
process_start_time_seconds 1.79638433191e+09
parcours_kafka_consumer_lag_records{group="parcours-processor",topic="a"} 3.0
parcours_processor_event_seconds_bucket{le="0.001"} 0.0
"""


def values(accepted: float = 0, start: float = 1.0, **more: float) -> Values:
    found: Values = {(START, ()): start, (ACCEPTED, ()): accepted}
    for status, value in more.items():
        found[(PROCESSOR_EVENTS, (("status", status),))] = value
    return found


def test_parse_keeps_only_the_wanted_samples_with_their_labels() -> None:
    parsed = parse(TEXT)
    assert parsed == {
        (ACCEPTED, ()): 5.0,
        (SENT, (("channel", "email"), ("priority", "tx"))): 2.0,
        (SENT, (("channel", "email"), ("priority", "bulk"))): 1.0,
        (START, ()): 1.79638433191e9,
        (LAG, (("group", "parcours-processor"), ("topic", "a"))): 3.0,
    }
    assert parse("") == {} and parse("# only comments\n") == {}


def test_minute_starts_end_with_the_current_minute() -> None:
    assert minute_starts(T0 + 59.9, 3) == [T0 - 120, T0 - 60, T0]
    assert minute_starts(T0 + 60, 1) == [T0 + 60]


def test_increases_handle_resets_restarts_new_series_and_silences() -> None:
    scrapes = [
        Scrape(T0, values(10)),
        Scrape(T0 + 15, values(14)),  # +4
        Scrape(T0 + 30, None),  # down: no pair across it
        Scrape(T0 + 45, values(16)),  # +2 since the last answer
        Scrape(T0 + 60, values(3)),  # went down: counted from 0, +3
        Scrape(T0 + 75, values(5, start=2.0)),  # restarted: +5, though 5 > 3
        Scrape(T0 + 90, values(5, start=2.0, excluded=2)),  # a new label value: +2
    ]
    found, pairs = increases(scrapes)
    assert [(i.at - T0, i.key[0], i.value) for i in found] == [
        (15, ACCEPTED, 4), (45, ACCEPTED, 2), (60, ACCEPTED, 3), (75, ACCEPTED, 5),
        (90, PROCESSOR_EVENTS, 2)]
    assert [p - T0 for p in pairs] == [15, 45, 60, 75, 90]


def test_summarise_sums_by_minute_and_says_which_minutes_it_saw() -> None:
    history = {
        "gateway": [Scrape(T0 + 60, values(0)), Scrape(T0 + 75, values(2)),
                    Scrape(T0 + 130, values(7))],
        "processor": [Scrape(T0 + 61, values(processing=1)),
                      Scrape(T0 + 131, values(processing=4, excluded=1))],
    }
    summary = summarise(history, now=T0 + 150, minutes=4)
    assert summary.starts == [T0 - 60, T0, T0 + 60, T0 + 120]
    assert summary.covered == [False, False, True, True]
    assert summary.throughput["accepted"] == [None, None, 2, 5]
    assert summary.statuses["processing"] == [None, None, 0, 3]
    assert summary.statuses["excluded"] == [None, None, 0, 1]


def test_senders_make_the_processed_status_and_the_channels() -> None:
    def sent(email_tx: float, email_bulk: float, start: float = 1.0) -> Values:
        return {(START, ()): start,
                (SENT, (("channel", "email"), ("priority", "tx"))): email_tx,
                (SENT, (("channel", "email"), ("priority", "bulk"))): email_bulk}

    history = {
        "sender-email": [Scrape(T0, sent(0, 0)), Scrape(T0 + 15, sent(3, 0))],
        "sender-email-bulk": [Scrape(T0, sent(0, 5)), Scrape(T0 + 15, sent(0, 9))],
        "sender-sms": [Scrape(T0, {(START, ()): 1.0, (SENT, (("channel", "sms"),
                                                           ("priority", "tx"))): 0.0}),
                       Scrape(T0 + 15, {(START, ()): 1.0, (SENT, (("channel", "sms"),
                                                                ("priority", "tx"))): 0.0})],
    }
    summary = summarise(history, now=T0 + 20, minutes=1)
    # every channel, with traffic or not (zeros)
    assert summary.sent == {"email": [7], "sms": [0], "push": [0]}
    assert summary.statuses["processed"] == [7]


def test_lag_is_summed_over_topics_and_the_most_of_the_minute() -> None:
    def lag(a: float, b: float) -> Values:
        return {(START, ()): 1.0,
                (LAG, (("group", "g"), ("topic", "a"))): a,
                (LAG, (("group", "g"), ("topic", "b"))): b}

    history = {"reactions": [Scrape(T0 + 1, lag(1, 2)), Scrape(T0 + 16, lag(10, 0)),
                             Scrape(T0 + 61, lag(0, 1))]}
    summary = summarise(history, now=T0 + 70, minutes=3)
    assert summary.lag == {"g": [None, 10, 1]}
    assert summary.lag_now == {"g": 1}


def test_a_window_before_any_scrape_is_all_unknown() -> None:
    summary = summarise({}, now=T0, minutes=2)
    assert summary.covered == [False, False]
    assert summary.throughput == {"accepted": [None, None], "rejected": [None, None],
                                  "kafka": [None, None]}
    assert summary.sent == {"email": [None, None], "sms": [None, None], "push": [None, None]}
    assert summary.dead_letters == {"processor": [None, None], "profileIngest": [None, None]}
    assert summary.lag == {} and summary.lag_now == {}


def test_the_ring_keeps_an_hour_a_service() -> None:
    ring = Ring(interval_s=15)
    assert ring.capacity == 242
    for i in range(1000):
        ring.add("gateway", Scrape(T0 + 15 * i, values(i)))
    kept = ring.history()["gateway"]
    assert len(kept) == 242 and kept[-1].at == T0 + 15 * 999
    first, last = (next(iter(s.values or {})) for s in (kept[0], kept[-1]))
    assert first == last and first is last  # one copy of a series' key


def test_the_sampler_reaches_each_service_by_its_name_where_names_resolve():
    from services.admin.metrics_summary import targets
    from shared.settings import Settings

    local = {t.name: t.url for t in targets(Settings())}
    assert local["processor"] == "http://127.0.0.1:9102/metrics"
    named = {t.name: t.url for t in targets(Settings(admin_metrics_host="{service}"))}
    assert named["processor"] == "http://processor:9102/metrics"
    assert named["sender-email-bulk"] == "http://sender-email-bulk:9106/metrics"
