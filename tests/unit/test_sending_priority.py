"""The lanes' pacing: tx never waits; bulk keeps to its cap, and a stop ends a wait."""

import asyncio
import time

from shared.sending.priority import BULK_BATCH, TX_BATCH, Lane


async def test_the_tx_lane_takes_big_batches_and_never_waits() -> None:
    lane, stop = Lane.tx(), asyncio.Event()
    began = time.monotonic()
    for _ in range(5):
        await lane.turn(stop)
        lane.took(TX_BATCH)
    assert lane.batch == TX_BATCH
    assert time.monotonic() - began < 0.05


async def test_the_bulk_lane_keeps_to_its_rate() -> None:
    lane, stop = Lane.bulk(rate_per_s=100), asyncio.Event()
    assert lane.batch == BULK_BATCH < TX_BATCH
    await lane.turn(stop)
    began = time.monotonic()
    lane.took(10)  # 10 messages at 100/s: the next batch 0.1 s after this one began
    await lane.turn(stop)
    assert 0.08 <= time.monotonic() - began < 0.3


async def test_an_uncapped_bulk_lane_does_not_wait() -> None:
    lane, stop = Lane.bulk(rate_per_s=0), asyncio.Event()
    await lane.turn(stop)
    lane.took(BULK_BATCH)
    began = time.monotonic()
    await lane.turn(stop)
    assert time.monotonic() - began < 0.05


async def test_a_stop_ends_the_wait_at_once() -> None:
    lane, stop = Lane.bulk(rate_per_s=1), asyncio.Event()
    await lane.turn(stop)
    lane.took(60)  # a minute's worth
    asyncio.get_running_loop().call_later(0.05, stop.set)
    began = time.monotonic()
    await lane.turn(stop)
    assert time.monotonic() - began < 1
