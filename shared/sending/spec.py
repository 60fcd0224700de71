"""What makes one sender differ from another."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter, Histogram

from shared.domain.events import Channel
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import SendRequest
from shared.settings import Settings
from shared.topics import Topic

# Gateway acceptance → provider acceptance; the objective is 1 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Provider(Protocol):
    async def hand_over(self, request: SendRequest, rendered: RenderedMessage) -> str | None:
        """Deliver one message; returns the provider's reference for it, if any. Raises
        ``PermanentFailure`` or ``TransientFailure`` (shared.adapters.delivery_errors)
        when the provider did not accept it. Retried: must be safe to call again."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class SenderMetrics:
    """Each service defines its own (literal names, so deployment files can be checked)."""

    sent: Counter  # labels: priority
    failed: Counter  # labels: reason (invalid, render, not_published, <provider>_permanent)
    duplicates: Counter
    retries: Counter  # labels: what (database, <provider>)
    accepted_to_provider: Histogram  # labels: priority


@dataclass(frozen=True)
class SenderSpec:
    stage: str  # e.g. "sender-email": the dead letters' stage, the logs
    channel: Channel
    topic: Topic
    group: str
    provider: str  # "smtp", "provider": in retry labels and permanent failure reasons
    metrics: SenderMetrics
    open_provider: Callable[[Settings], Provider]
