"""profile-ingest metrics; label values come from fixed sets."""

from prometheus_client import Counter, Histogram

RECORDS = Counter(
    "parcours_profile_ingest_records_total",
    "Records of parcours.profiles.v1 handled, by outcome", ["outcome"],
)  # created, updated, stale, erased, refused, invalid, conflict
DEADLETTERED = Counter(
    "parcours_profile_ingest_deadletter_total", "Records sent to the dead-letter topic",
    ["reason"],
)  # the reason's first word: unsigned, unauthenticated, forbidden, invalid, conflict, error
SIGNING_KEY_QUERIES = Counter(
    "parcours_profile_ingest_signing_key_queries_total",
    "Lookups of the keys that sign records that reached PostgreSQL (not the cache)",
)
RETRIES = Counter("parcours_profile_ingest_retries_total",
                  "Waits on an unavailable dependency")
BATCH_SECONDS = Histogram(
    "parcours_profile_ingest_batch_seconds", "Time to handle one batch of records",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
