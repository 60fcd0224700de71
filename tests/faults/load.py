"""Steady load through the gateway for the fault suite: events of one tenant on every
channel (email, SMS, push) at a fixed rate, each answer kept, whatever happens to the
services meanwhile. The gateway must answer 202 or 503 (or be unreachable while it is
itself killed); ``parcours reconcile`` then decides whether every 202 ended."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.integration.conftest import GATEWAY

SMS_TEMPLATE = {"text": "Hi {{ profile.first_name or 'there' }}, {{ ctx.item }}"}
PUSH_TEMPLATE = {"title": "{{ ctx.item }} has shipped", "body": "It arrives tomorrow."}


def body_for(channel: str, n: int) -> dict[str, Any]:
    ctx = {"item": f"fault-{n}"}
    if channel == "email":
        return {"email": f"fault-{uuid.uuid4().hex[:12]}@example.com", "ctx": ctx}
    if channel == "sms":
        return {"mobilePhone": f"+1555{uuid.uuid4().int % 10**7:07d}", "ctx": ctx}
    return {"registrationToken": f"tok-{uuid.uuid4().hex}", "application": "shop",
            "pushPlatform": "fcm", "ctx": ctx}


@dataclass
class SteadyLoad:
    """Posts ``rate`` events a second, round-robin over ``events`` (channel → event id),
    until stopped."""

    client: httpx.AsyncClient
    events: dict[str, str]
    rate: float = 100.0
    answers: Counter[str] = field(default_factory=Counter)  # "202", "503", "unreachable"…
    accepted: list[str] = field(default_factory=list)  # pKeys answered 202
    unexpected: list[str] = field(default_factory=list)
    stopping: bool = False

    async def _post(self, channel: str, n: int) -> None:
        try:
            response = await self.client.post(f"{GATEWAY}/v1/events/{self.events[channel]}",
                                              json=body_for(channel, n))
        except httpx.TransportError:  # the gateway itself killed: nothing was accepted
            self.answers["unreachable"] += 1
            return
        self.answers[str(response.status_code)] += 1
        if response.status_code == 202:
            self.accepted.append(response.json()["pKey"])
        elif response.status_code != 503:
            self.unexpected.append(f"{response.status_code} {response.text[:200]}")

    async def run(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        channels = list(self.events)
        started, sent = time.monotonic(), 0
        while not self.stopping:
            task = asyncio.create_task(self._post(channels[sent % len(channels)], sent))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
            await asyncio.sleep(max(0.0, started + sent / self.rate - time.monotonic()))
        await asyncio.gather(*tasks)


@dataclass
class JourneyLoad:
    """Posts ``rate`` journey events a second (``event_id``, naming ``customerId``), each
    for the next profile of ``profiles``, until stopped or out of profiles: each one enters
    the journey and is sent its messages on the bulk lanes."""

    client: httpx.AsyncClient  # with an ingestion key of the tenant
    event_id: str
    profiles: list[str]
    rate: float = 20.0
    answers: Counter[str] = field(default_factory=Counter)
    accepted: list[str] = field(default_factory=list)  # profile ids whose event got a 202
    unexpected: list[str] = field(default_factory=list)
    stopping: bool = False

    async def _post(self, profile_id: str) -> None:
        try:
            response = await self.client.post(
                f"{GATEWAY}/v1/journey-events/{self.event_id}",
                json={"customerId": profile_id})
        except httpx.TransportError:
            self.answers["unreachable"] += 1
            return
        self.answers[str(response.status_code)] += 1
        if response.status_code == 202:
            self.accepted.append(profile_id)
        elif response.status_code != 503:
            self.unexpected.append(f"{response.status_code} {response.text[:200]}")

    async def run(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        started, sent = time.monotonic(), 0
        while not self.stopping and sent < len(self.profiles):
            task = asyncio.create_task(self._post(self.profiles[sent]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
            await asyncio.sleep(max(0.0, started + sent / self.rate - time.monotonic()))
        await asyncio.gather(*tasks)
