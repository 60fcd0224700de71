"""Failover between providers, each behind its circuit breaker (in process: providers
that answer as told, a clock the test moves)."""

from __future__ import annotations

import pytest

from shared.adapters.delivery_errors import PermanentFailure, TransientFailure
from shared.adapters.provider_fault import ProviderFault
from shared.domain.circuit_breaker import BreakerState, CircuitBreaker
from shared.sending.failover import PRIMARY, SECONDARY, Failover, ProvidersDown, Route


class Told:
    def __init__(self, name: str) -> None:
        self.name = name
        self.failure: Exception | None = None
        self.calls = 0

    async def hand_over(self, request: object, rendered: object) -> str | None:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        return f"{self.name}-{self.calls}"

    async def close(self) -> None:
        pass


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def failover(secondary: bool = True) -> tuple[Failover, Told, Told, Clock]:
    first, second, clock = Told("a"), Told("b"), Clock()
    routes = [Route(PRIMARY, first, CircuitBreaker(3, 10))]
    if secondary:
        routes.append(Route(SECONDARY, second, CircuitBreaker(3, 10)))
    return Failover("sms", routes, clock), first, second, clock


async def send(f: Failover) -> str | None:
    return await f.hand_over(None, None)  # type: ignore[arg-type]


async def test_the_first_provider_sends_and_the_reference_names_none() -> None:
    f, _, second, _ = failover()
    assert await send(f) == "a-1"
    assert second.calls == 0


async def test_a_failure_is_raised_not_sent_elsewhere_and_three_open_the_breaker() -> None:
    f, first, second, _ = failover()
    first.failure = ProviderFault("provider 503")
    for _ in range(3):
        with pytest.raises(ProviderFault):
            await send(f)
    assert second.calls == 0  # never the same message to two providers
    assert f.routes[0].breaker.state is BreakerState.OPEN
    assert await send(f) == "b-1; via secondary"
    assert first.calls == 3


async def test_a_probe_after_open_s_hands_back_on_success() -> None:
    f, first, _, clock = failover()
    first.failure = ProviderFault("provider connection: ConnectError")
    for _ in range(3):
        with pytest.raises(ProviderFault):
            await send(f)
    clock.now = 5
    assert (await send(f) or "").endswith("via secondary")
    first.failure = None
    clock.now = 10
    assert await send(f) == "a-4"  # the probe
    assert f.routes[0].breaker.state is BreakerState.CLOSED
    assert await send(f) == "a-5"


async def test_a_failed_probe_keeps_the_second_in_charge() -> None:
    f, first, _, clock = failover()
    first.failure = ProviderFault("provider 503")
    for _ in range(3):
        with pytest.raises(ProviderFault):
            await send(f)
    clock.now = 10
    with pytest.raises(ProviderFault):
        await send(f)  # the probe fails
    assert (await send(f) or "").endswith("via secondary")


async def test_refusals_of_one_message_do_not_count_against_the_provider() -> None:
    f, first, _, _ = failover()
    first.failure = TransientFailure("smtp 450: mailbox busy", address_fault=True)
    for _ in range(5):
        with pytest.raises(TransientFailure):
            await send(f)
    first.failure = PermanentFailure("provider 400: invalid number")
    with pytest.raises(PermanentFailure):
        await send(f)
    assert f.routes[0].breaker.state is BreakerState.CLOSED


async def test_every_breaker_open_is_providers_down() -> None:
    f, first, _, _ = failover(secondary=False)
    first.failure = ProviderFault("provider 503")
    for _ in range(3):
        with pytest.raises(ProviderFault):
            await send(f)
    with pytest.raises(ProvidersDown):
        await send(f)
    assert first.calls == 3
