"""Processor metrics; label values are statuses and reasons from fixed sets."""

from prometheus_client import Counter, Histogram

from shared.outgoing.metrics import RULE_OUTCOMES  # noqa: F401  (the processor's stage)

EVENTS_PROCESSED = Counter(
    "parcours_processor_events_total", "Trigger events handled, by outcome status", ["status"]
)
DEADLETTERED = Counter(
    "parcours_processor_deadletter_total", "Records sent to the dead-letter topic", ["reason"]
)
KAFKA_EVENTS = Counter(
    "parcours_processor_kafka_events_total",
    "Records internal systems produced to Kafka, by outcome", ["outcome"],
)  # admitted, invalid, unknown_event, refused (signature or tenant: record_signing)
SIGNING_KEY_QUERIES = Counter(
    "parcours_processor_signing_key_queries_total",
    "Lookups of the keys that sign Kafka records that reached PostgreSQL (not the cache)",
)
RETRIES = Counter("parcours_processor_retries_total", "Waits on an unavailable dependency")
PROCESS_SECONDS = Histogram(
    "parcours_processor_event_seconds",
    "Time to handle one trigger event",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
