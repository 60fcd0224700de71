"""SMS sender metrics; label values come from fixed sets."""

from prometheus_client import Counter, Histogram

from shared.sending.spec import LATENCY_BUCKETS, SenderMetrics

SENT = Counter("parcours_sender_sms_sent_total", "SMS messages accepted by the provider",
               ["priority"])
FAILED = Counter("parcours_sender_sms_failed_total", "SMS messages that failed for good, by reason",
                 ["reason"])  # invalid, render, provider_permanent, not_published
SKIPPED = Counter("parcours_sender_sms_duplicates_total",
                  "Redelivered messages already sent, not sent again")
RETRIES = Counter("parcours_sender_sms_retries_total", "Provider or database retries", ["what"])
ACCEPTED_TO_PROVIDER = Histogram(
    "parcours_sender_sms_accepted_to_provider_seconds",
    "From gateway acceptance to the provider's acceptance",
    ["priority"],
    buckets=LATENCY_BUCKETS,
)

METRICS = SenderMetrics(SENT, FAILED, SKIPPED, RETRIES, ACCEPTED_TO_PROVIDER)
