"""Email sender metrics; label values come from fixed sets."""

from prometheus_client import Counter, Histogram

SENT = Counter("parcours_sender_email_sent_total", "Emails accepted by the SMTP server",
               ["priority"])
FAILED = Counter("parcours_sender_email_failed_total", "Emails that failed for good, by reason",
                 ["reason"])  # render, smtp_permanent, not_published
SKIPPED = Counter("parcours_sender_email_duplicates_total",
                  "Redelivered messages already sent, not sent again")
RETRIES = Counter("parcours_sender_email_retries_total", "SMTP or database retries", ["what"])
ACCEPTED_TO_SMTP = Histogram(
    "parcours_accepted_to_smtp_seconds",
    "From gateway acceptance to the SMTP server's acceptance",
    ["priority"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
