"""Tracking metrics. Labels are bounded: routes and outcomes."""

from prometheus_client import Counter

REQUESTS = Counter(
    "parcours_tracking_requests_total",
    "Pixel and click requests, by outcome",
    # route: open, click; outcome: recorded, repeated (already recorded), refused (forged
    # or altered token), unknown (no such message), expired (sent longer ago than links are
    # kept: retention_tracked_messages_days), unavailable (PostgreSQL away: 503)
    ["route", "outcome"],
)
