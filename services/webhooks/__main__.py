"""Run the outbound webhooks service: ``python -m services.webhooks`` (metrics on
webhooks_metrics_port). ``--allow-local-targets``: http:// and loopback or private
addresses may be called (the local stack and its tests; never in production)."""

import argparse
import asyncio
import logging
import signal

from prometheus_client import start_http_server

from services.webhooks.service import run
from shared import heap
from shared.logging_setup import configure_logging
from shared.settings import Settings, get_settings
from shared.shutdown import exit_within


async def supervised(settings: Settings) -> None:
    task = asyncio.create_task(run(settings))
    loop = asyncio.get_running_loop()

    def stopping() -> None:
        exit_within()
        task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping)
    try:
        await task
    except asyncio.CancelledError:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m services.webhooks")
    parser.add_argument("--allow-local-targets", action="store_true")
    arguments = parser.parse_args()
    configure_logging("webhooks")
    # httpx logs every request at INFO: 5% of the process's CPU at 150 calls/s (py-spy);
    # the delivery log has each call.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = get_settings()
    if arguments.allow_local_targets:
        settings = settings.model_copy(update={"webhooks_allow_local_targets": True})
    start_http_server(settings.webhooks_metrics_port, addr=settings.metrics_host)
    heap.settle()
    asyncio.run(supervised(settings))
