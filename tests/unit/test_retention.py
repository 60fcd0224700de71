"""Retention's cut-offs (shared/domain/retention.py): days to durations, the reactions'
floor (their deduplication outlives the tracked links), each tenant's contact history kept
for its longest fatigue or capacity period plus a day, expired links."""

from datetime import UTC, datetime, timedelta

from shared.domain.retention import (
    RULE_MARGIN,
    Retention,
    days,
    expired,
    history_cutoffs,
    longest_periods,
    rule_period,
)

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


def test_days_zero_or_less_keep_for_ever():
    assert days(0) is None and days(-1) is None
    assert days(1.5) == timedelta(days=1.5)


def test_reactions_are_kept_at_least_as_long_as_tracked_links():
    assert Retention.of(90, 180, 30, 180).reactions == timedelta(days=180)
    assert Retention.of(90, 180, 365, 180).reactions == timedelta(days=365)
    assert Retention.of(90, 180, 30, 0).reactions is None  # links for ever: dedup too
    assert Retention.of(90, 180, 0, 180).reactions is None
    assert Retention.of(0, 0, 1, 1).message_trace is None


def test_rule_periods_of_the_rules_that_count_the_history():
    assert rule_period({"kind": "fatigue", "period": "P7D"}) == timedelta(days=7)
    assert rule_period({"kind": "capacity", "period": "PT12H"}) == timedelta(hours=12)
    assert rule_period({"kind": "capacity", "period": 3600}) == timedelta(hours=1)
    assert rule_period({"kind": "filtering", "period": "P7D"}) is None
    assert rule_period({"kind": "fatigue", "period": "soon"}) is None
    assert rule_period({"kind": "fatigue"}) is None
    periods = longest_periods([("a", {"kind": "fatigue", "period": "P7D"}),
                               ("a", {"kind": "capacity", "period": "P30D"}),
                               ("a", {"kind": "fatigue", "period": "P1D"}),
                               ("b", {"kind": "quietHours"})])
    assert periods == {"a": timedelta(days=30)}


def test_a_tenant_whose_rules_count_further_keeps_its_history_longer():
    cutoffs = history_cutoffs(NOW, timedelta(days=180), {
        "long": timedelta(days=300), "short": timedelta(days=7),
        "edge": timedelta(days=180) - RULE_MARGIN})
    assert cutoffs is not None
    assert cutoffs.default == NOW - timedelta(days=180)
    assert cutoffs.longer == {"long": NOW - timedelta(days=301)}
    assert history_cutoffs(NOW, None, {"long": timedelta(days=300)}) is None


def test_a_link_expires_after_its_days():
    keep = timedelta(days=180)
    assert expired(NOW - timedelta(days=181), NOW, keep)
    assert not expired(NOW - timedelta(days=179), NOW, keep)
    assert not expired(NOW - timedelta(days=999), NOW, None)
    assert not expired(None, NOW, keep)
