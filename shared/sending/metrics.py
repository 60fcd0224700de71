"""Sender metrics: one set for every channel, told apart by the ``channel`` label.

Label values come from fixed sets. A sender process binds its own channel
(``SenderMetrics``), so it exports series for that channel only; its tx and bulk lanes
share them (the ``priority`` label and the scrape job tell them apart).
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from shared.domain.events import Channel
from shared.outgoing.metrics import RULE_OUTCOMES, rule_label

# Gateway acceptance → provider acceptance; the objective is 1 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

SENT = Counter("parcours_sender_sent_total", "Messages accepted by the provider (SMTP server)",
               ["channel", "priority"])
# reason: invalid, render, not_published, <provider>_permanent (smtp_permanent,
# provider_permanent)
FAILED = Counter("parcours_sender_failed_total", "Messages that failed for good, by reason",
                 ["channel", "reason"])
DUPLICATES = Counter("parcours_sender_duplicates_total",
                     "Redelivered messages already sent, not sent again", ["channel"])
# what: database, kafka (dead letters), <provider> (smtp, provider)
RETRIES = Counter("parcours_sender_retries_total", "Provider or database retries",
                  ["channel", "what"])
def register_rule_outcomes() -> None:
    """The senders' series of the rules' outcomes, at 0 from the start."""
    RULE_OUTCOMES.labels("control", "none", "excluded", "sender")


ACCEPTED_TO_PROVIDER = Histogram(
    "parcours_sender_accepted_to_provider_seconds",
    "From gateway acceptance to the provider's (SMTP server's) acceptance",
    ["channel", "priority"],
    buckets=LATENCY_BUCKETS,
)


_M = TypeVar("_M", Counter, Gauge, Histogram)


def series(metric: _M, *labels: str) -> _M:
    """A metric's series for the labels, looked up once: ``labels()`` takes a lock and
    checks the labels (about 2 µs), several times a message on the senders' path."""
    found: _M = _series(metric, labels)
    return found


@functools.cache  # as bounded as the label values (metric label sets are bounded)
def _series(metric: Any, labels: tuple[str, ...]) -> Any:
    return metric.labels(*labels)


class SenderMetrics:
    """The shared metrics with one channel's label bound: each method takes the other
    label and returns the series to ``inc()`` or ``observe()``."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel.value
        # Unlabelled otherwise: bound now, so the series is there (at 0) from the start.
        self.duplicates = DUPLICATES.labels(self.channel)

    def sent(self, priority: str) -> Counter:
        return series(SENT, self.channel, priority)

    def failed(self, reason: str) -> Counter:
        return series(FAILED, self.channel, reason)

    def retries(self, what: str) -> Counter:
        return series(RETRIES, self.channel, what)

    @staticmethod
    def rule_outcome(kind: str, rule_id: str, outcome: str) -> Counter:
        return RULE_OUTCOMES.labels(kind, rule_label(rule_id), outcome, "sender")

    def accepted_to_provider(self, priority: str) -> Histogram:
        return series(ACCEPTED_TO_PROVIDER, self.channel, priority)
