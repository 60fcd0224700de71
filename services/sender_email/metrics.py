"""Email sender metrics; label values come from fixed sets."""

from prometheus_client import Counter, Histogram

from shared.sending.spec import LATENCY_BUCKETS, SenderMetrics

SENT = Counter("parcours_sender_email_sent_total", "Emails accepted by the SMTP server",
               ["priority"])
FAILED = Counter("parcours_sender_email_failed_total", "Emails that failed for good, by reason",
                 ["reason"])  # invalid, render, smtp_permanent, not_published
SKIPPED = Counter("parcours_sender_email_duplicates_total",
                  "Redelivered messages already sent, not sent again")
RETRIES = Counter("parcours_sender_email_retries_total", "SMTP or database retries", ["what"])
ACCEPTED_TO_SMTP = Histogram(
    "parcours_accepted_to_smtp_seconds",
    "From gateway acceptance to the SMTP server's acceptance",
    ["priority"],
    buckets=LATENCY_BUCKETS,
)

METRICS = SenderMetrics(SENT, FAILED, SKIPPED, RETRIES, ACCEPTED_TO_SMTP)
