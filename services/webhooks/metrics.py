"""Outbound webhooks' metrics. Labels are bounded: sources, outcomes."""

from prometheus_client import Counter, Gauge, Histogram

SCHEDULED = Counter(
    "parcours_webhook_notifications_scheduled_total",
    "Deliveries scheduled (one per matching subscription), by what caused them",
    ["source"],  # status, reaction (the admin API schedules pings itself)
)
ATTEMPTS = Counter(
    "parcours_webhook_attempts_total",
    "Calls to tenants' endpoints, by outcome: delivered (2xx), retrying, failed (given up"
    " after a day)",
    ["outcome"],
)
CALL_SECONDS = Histogram(
    "parcours_webhook_call_seconds",
    "Time of one call to an endpoint, answered or not",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IN_FLIGHT = Gauge("parcours_webhook_calls_in_flight", "Calls to endpoints under way")
