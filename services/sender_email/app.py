"""The sender's consume loop: a batch is committed only after each of its messages settled."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiokafka.errors import KafkaError

from services.sender_email.handlers import deliver
from services.sender_email.wiring import Sender
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.resilience import retry_forever
from shared.settings import Settings

log = logging.getLogger(__name__)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    sender = await retry_forever(lambda: Sender.open(settings), "opening the email sender",
                                 (*DB_UNAVAILABLE, KafkaError))
    log.info("email sender consuming")
    try:
        while not stop.is_set():
            batches = await sender.consumer.getmany(timeout_ms=200, max_records=200)
            for records in batches.values():
                for record in records:
                    await deliver(sender, record.key, record.value)
            if batches:
                await sender.consumer.commit()
    finally:
        await sender.close()


def main(settings: Settings) -> None:
    async def supervised() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    asyncio.run(supervised())
