"""Provider failover: a second provider per channel takes over while the first fails.

Each provider (route) has a circuit breaker (``shared.domain.circuit_breaker``):
``provider_breaker_failures`` failures in a row that blame it (``ProviderFault``: lost
connections, timeouts, HTTP 5xx/408/429, SMTP 421 or a refused login; never a refusal
of one recipient) open it, and messages go to the next route whose breaker lets them;
after ``provider_breaker_open_s`` one message probes the first again (half-open), and its
success hands the traffic back.

A message whose hand-over failed is not handed to the other provider at once: the first
may have taken it before the failure (a timeout after acceptance), and two providers
share no idempotency key. It goes to the retry schedule, like any refusal for now, and
its retry goes by whichever route is open then. When no route lets a message through
(every breaker open: the only provider is down) there is nothing to gain from scheduling
retries: ``ProvidersDown`` makes the sender wait and try again, holding the batch, as
for a database outage, until a probe succeeds.

The trace's hand-over row names the provider when it is not the first ("…; via
secondary"); the ledger keeps that with the provider's reference.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

from shared.adapters.delivery_errors import PermanentFailure, TransientFailure
from shared.adapters.provider_fault import ProviderFault
from shared.domain.circuit_breaker import BreakerState, CircuitBreaker
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import SendRequest
from shared.sending.metrics import series
from shared.sending.spec import Provider
from shared.settings import Settings

PRIMARY, SECONDARY = "primary", "secondary"

HANDOVERS = Counter("parcours_sender_provider_handovers_total",
                    "Messages each provider accepted, by route (primary, secondary)",
                    ["channel", "provider"])
BREAKER = Gauge("parcours_sender_provider_breaker_state",
                "Each provider's circuit breaker: 0 closed, 1 half-open, 2 open",
                ["channel", "provider"])
_STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class ProvidersDown(TransientFailure):
    """No provider's breaker lets a message through now."""


@dataclass
class Route:
    name: str
    provider: Provider
    breaker: CircuitBreaker


@dataclass
class Delivered:
    """Who took a message, and its reference there."""

    route: str
    reference: str | None

    def note(self) -> str | None:
        """What the ledger and trace say beside the reference: the provider, unless it is
        the first one (as before failover existed)."""
        return None if self.route == PRIMARY else f"via {self.route}"


@dataclass
class Failover:
    channel: str
    routes: list[Route]
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    @classmethod
    def of(cls, channel: str, settings: Settings, primary: Provider,
           secondary: Provider | None = None) -> Failover:
        def breaker() -> CircuitBreaker:
            return CircuitBreaker(settings.provider_breaker_failures,
                                  settings.provider_breaker_open_s)

        routes = [Route(PRIMARY, primary, breaker())]
        if secondary is not None:
            routes.append(Route(SECONDARY, secondary, breaker()))
        for route in routes:
            BREAKER.labels(channel, route.name).set(0)
            HANDOVERS.labels(channel, route.name)
        return cls(channel, routes)

    def _now(self) -> float:
        return self.clock()

    def _mark(self, route: Route) -> None:
        series(BREAKER, self.channel, route.name).set(_STATE_VALUE[route.breaker.state])

    async def deliver(self, request: SendRequest, rendered: RenderedMessage) -> Delivered:
        """The first route whose breaker lets it through takes the message."""
        for route in self.routes:
            if not route.breaker.allow(self._now()):
                continue
            self._mark(route)
            try:
                reference = await route.provider.hand_over(request, rendered)
            except ProviderFault:
                route.breaker.failed(self._now())
                self._mark(route)
                raise
            except (PermanentFailure, TransientFailure):
                route.breaker.succeeded()  # it answered: it is working
                self._mark(route)
                raise
            route.breaker.succeeded()
            self._mark(route)
            series(HANDOVERS, self.channel, route.name).inc()
            return Delivered(route.name, reference)
        raise ProvidersDown(f"every {self.channel} provider is failing: waiting for a probe")

    async def hand_over(self, request: SendRequest, rendered: RenderedMessage) -> str | None:
        delivered = await self.deliver(request, rendered)
        note = delivered.note()
        if note is None:
            return delivered.reference
        return f"{delivered.reference}; {note}" if delivered.reference else note

    async def close(self) -> None:
        for route in self.routes:
            await route.provider.close()
