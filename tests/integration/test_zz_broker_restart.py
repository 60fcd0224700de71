"""A broker restart under load, the way it happens in a rolling restart or a crash: the
gateway keeps taking 200 events/s while the broker is stopped (SIGTERM, or ``kill -9``),
stays away ~10 s and comes back. Every producer recovers by itself (aiokafka's
idempotent producer is left with a sequence gap by the batches it gave up, and the
broker refuses it with OutOfOrderSequenceNumber until it is replaced): the gateway
answers 202 again within 10 s of the broker being ready, every event answered 202 ends
``processed`` and is emailed once, and none answered 503 is ever sent."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from shared.domain.status import TERMINAL
from shared.settings import RUN_DIR
from tests.integration.conftest import (
    GATEWAY,
    SINK,
    eventually,
    publish_event,
    stack,
    unique_email,
)

pytestmark = pytest.mark.disruptive
RATE_PER_S = 200
BEFORE_S, AWAY_S, AFTER_S = 3.0, 10.0, 12.0
BACK_WITHIN_S = 10.0
MAX_RESETS = 5  # connections closed under a request, retried: of ~7,000 requests


@dataclass
class Answered:
    email: str
    sent_at: float  # monotonic
    status: int
    href: str | None = None


@dataclass
class Load:
    """Posts one event every 1/RATE_PER_S seconds until stopped; keeps every answer."""

    client: httpx.AsyncClient
    event_id: str
    answers: list[Answered] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)  # retried once (see _post)
    stopping: bool = False
    began: float = field(default_factory=time.monotonic)

    async def _post(self, email: str, retried: bool = False) -> None:
        sent_at = time.monotonic()
        try:
            response = await self.client.post(f"{GATEWAY}/v1/events/{self.event_id}",
                                              json={"email": email, "ctx": {"item": "restart"}})
        except httpx.HTTPError as error:  # the gateway must answer, whatever Kafka does
            # when, from the load's start and for how long: to set a failure against the
            # broker's stop and start in the log
            what = (f"{type(error).__name__}: {error!r} sent at +{sent_at - self.began:.2f} s,"
                    f" failed after {time.monotonic() - sent_at:.2f} s")
            if isinstance(error, httpx.TransportError) and not retried:
                # A connection closed under a request is retried once, as any client
                # does (seen in CI: two of ~7,000, 2.3 s after the broker came back from
                # kill -9, nothing in the gateway's log). Never hidden: had the gateway
                # accepted the first, the address gets two mails, or one answered 503
                # does, and the checks below fail; and they are counted (MAX_RESETS).
                self.resets.append(what)
                await self._post(email, retried=True)
                return
            self.failures.append(what)
            return
        href = response.json().get("href") if response.status_code == 202 else None
        self.answers.append(Answered(email, sent_at, response.status_code, href))

    async def run(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        started, sent = time.monotonic(), 0
        while not self.stopping:
            task = asyncio.create_task(self._post(unique_email("restart")))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
            await asyncio.sleep(max(0.0, started + sent / RATE_PER_S - time.monotonic()))
        await asyncio.gather(*tasks)


async def _statuses(pool: asyncpg.Pool, event_id: str) -> dict[str, str]:
    rows = await pool.fetch("SELECT pkey, status FROM event_status WHERE event_id = $1",
                            event_id)
    return {row["pkey"]: row["status"] for row in rows}


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_broker_restart_under_load_recovers_by_itself(
    pool: asyncpg.Pool, ingest_key: str, how: str
) -> None:
    event_id = await publish_event(pool, "event")
    # Idle connections are dropped by the client before uvicorn's 5 s keep-alive closes
    # them: reusing one at the instant the server closes it is a reset no server avoids.
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200,
                          keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=60, limits=limits,
                                 headers={"authorization": f"Bearer {ingest_key}"}) as client:
        load = Load(client, event_id)
        running = asyncio.create_task(load.run())
        try:
            await asyncio.sleep(BEFORE_S)  # pacing the load, not waiting for a state
            stopped_at = time.monotonic()
            await asyncio.to_thread(stack, how, "kafka")
            await asyncio.sleep(AWAY_S)  # the outage itself: the broker stays away this long
            await asyncio.to_thread(stack, "start", "kafka")  # returns once metadata answers
            back_at = time.monotonic()
            await asyncio.sleep(AFTER_S)
        finally:
            load.stopping = True
            await running

        assert not load.failures, (
            f"{len(load.failures)} requests the gateway did not answer (the broker stopped"
            f" at +{stopped_at - load.began:.2f} s, back at +{back_at - load.began:.2f} s):"
            f" {load.failures[:3]}")
        assert len(load.resets) <= MAX_RESETS, (
            f"{len(load.resets)} connections closed under a request: {load.resets[:3]}")
        assert {a.status for a in load.answers} <= {202, 503}
        accepted = [a for a in load.answers if a.status == 202]
        refused = [a for a in load.answers if a.status == 503]
        assert refused, "the broker's absence was never seen: the test proves nothing"
        again = [a.sent_at for a in accepted if a.sent_at >= back_at]
        assert again and again[0] - back_at <= BACK_WITHIN_S, (
            "the gateway did not accept again within 10 s of the broker being ready")
        late = [a for a in load.answers if a.sent_at >= back_at + BACK_WITHIN_S]
        assert late and all(a.status == 202 for a in late), (
            f"{sum(a.status != 202 for a in late)} of {len(late)} requests refused "
            f"more than {BACK_WITHIN_S:.0f} s after the broker was back")

        pkeys = {a.href.rsplit("/", 1)[1]: a for a in accepted if a.href}

        async def all_final() -> dict[str, str] | None:
            statuses = await _statuses(pool, event_id)
            done = all(statuses.get(p) in {s.value for s in TERMINAL} for p in pkeys)
            return statuses if done else None

        statuses = await eventually(all_final, "every accepted event to reach a final status",
                                    deadline_s=120)
        not_processed = {p: statuses[p] for p in pkeys if statuses[p] != "processed"}
        assert not not_processed, f"not processed: {list(not_processed.items())[:5]}"

        async def mailed() -> list[str] | None:
            recipients: list[str] = (await client.get(
                f"{SINK}/recipients", params={"containing": "restart-"})).json()
            return recipients if set(a.email for a in accepted) <= set(recipients) else None

        recipients = await eventually(mailed, "every accepted event to be emailed",
                                      deadline_s=60)
        mine = {a.email for a in load.answers}
        counts: dict[str, int] = {}
        for to in recipients:
            if to in mine:
                counts[to] = counts.get(to, 0) + 1
        assert all(counts.get(a.email) == 1 for a in accepted), "an event was emailed twice"
        sent_anyway = [a.email for a in refused if a.email in counts]
        assert not sent_anyway, f"{len(sent_anyway)} events answered 503 were emailed"


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state in ("Z", "X")  # exited; its parent has not reaped it yet


async def _sigterm(name: str, deadline_s: float = 30) -> float:
    """SIGTERM to the service's process group, as the stack (and Kubernetes) sends it;
    seconds until its process is gone, timed from the signal itself."""
    pid = int((RUN_DIR / "pids" / f"{name}.pid").read_text())
    os.killpg(pid, signal.SIGTERM)
    sent = time.monotonic()
    while not _gone(pid):
        if time.monotonic() - sent > deadline_s:
            os.killpg(pid, signal.SIGKILL)
            return deadline_s
        await asyncio.sleep(0.05)
    return time.monotonic() - sent


SERVICES = ("gateway", "processor", "sender-email", "sender-email-bulk", "sender-sms",
            "sender-push", "admin", "profile-ingest")


async def test_sigterm_ends_every_service_within_10_s_with_the_broker_away(
    pool: asyncpg.Pool, ingest_key: str
) -> None:
    """The broker killed while events flow leaves every producer retrying and every
    consumer reconnecting: that is when a graceful stop can wait forever."""
    event_id = await publish_event(pool, "event")
    limits = httpx.Limits(max_connections=2000, keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=60, limits=limits,
                                 headers={"authorization": f"Bearer {ingest_key}"}) as client:
        load = Load(client, event_id)
        running = asyncio.create_task(load.run())
        took: dict[str, float] = {}
        try:
            await asyncio.sleep(2.0)  # pacing the load, not waiting for a state
            await asyncio.to_thread(stack, "kill", "kafka")
            await asyncio.sleep(3.0)  # requests in flight meet the broker's absence
            load.stopping = True
            await running
            for name in SERVICES:
                took[name] = await _sigterm(name)
        finally:
            load.stopping = True
            await running
            await asyncio.to_thread(stack, "up")  # the broker and every service again
    slow = {name: f"{s:.1f}s" for name, s in took.items() if s > 10}
    assert len(took) == len(SERVICES) and not slow, f"SIGTERM took over 10 s: {slow}"
