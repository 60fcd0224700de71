"""What makes one sender differ from another."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from shared.domain.events import Channel
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import SendRequest
from shared.sending.metrics import SenderMetrics
from shared.settings import Settings
from shared.topics import Topic


class Provider(Protocol):
    async def hand_over(self, request: SendRequest, rendered: RenderedMessage) -> str | None:
        """Deliver one message; returns the provider's reference for it, if any. Raises
        ``PermanentFailure`` or ``TransientFailure`` (shared.adapters.delivery_errors)
        when the provider did not accept it. Retried: must be safe to call again."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class SenderSpec:
    stage: str  # e.g. "sender-email": the dead letters' stage, the logs
    channel: Channel
    topic: Topic
    group: str
    provider: str  # "smtp", "provider": in retry labels and permanent failure reasons
    open_provider: Callable[[Settings], Provider]
    # The shared sender metrics, bound to this channel (shared.sending.metrics).
    metrics: SenderMetrics = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", SenderMetrics(self.channel))
