"""Run the reactions relay (outbox → Kafka), the reactions consumer, the retention
purge and the consumer-lag exporter:
``python -m services.reactions`` (metrics on reactions_metrics_port)."""

import asyncio
import signal

from prometheus_client import start_http_server

from services.reactions import lag, relay, retention
from services.reactions.consumer import run
from shared import heap
from shared.logging_setup import configure_logging
from shared.settings import Settings, get_settings
from shared.shutdown import exit_within


async def supervised(settings: Settings) -> None:
    task = asyncio.create_task(run(settings))
    relaying = asyncio.create_task(relay.run(settings))
    purging = asyncio.create_task(retention.run(settings))
    measuring = asyncio.create_task(lag.run(settings))
    loop = asyncio.get_running_loop()

    def stopping() -> None:
        exit_within()
        task.cancel()
        relaying.cancel()
        purging.cancel()
        measuring.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        for background in (relaying, purging, measuring):
            background.cancel()
        await asyncio.gather(relaying, purging, measuring, return_exceptions=True)


if __name__ == "__main__":
    configure_logging("reactions")
    settings = get_settings()
    start_http_server(settings.reactions_metrics_port, addr=settings.metrics_host)
    heap.settle()
    asyncio.run(supervised(settings))
