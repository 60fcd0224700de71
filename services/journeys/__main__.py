"""Run the journey engine: ``python -m services.journeys`` (metrics on
journeys_metrics_port). One process runs seven loops: profiles entering, the inputs
consumer, the timers, the step events' relay to Kafka, the outbox's recovery, the held
backlog's gauges and the sweep of goals on a profile condition.
``--allow-local-targets``: HTTP actions may call http:// and loopback or private addresses
(the local stack and its tests)."""

import argparse
import asyncio
import logging
import signal

from prometheus_client import start_http_server

from services.journeys import backlog, effects, entry, goal_sweep, inputs, step_relay, timers
from services.journeys.loops import repeat
from services.journeys.wiring import Engine
from shared import heap
from shared.logging_setup import configure_logging
from shared.settings import Settings, get_settings
from shared.shutdown import exit_within

log = logging.getLogger(__name__)
RECOVER_EVERY_S = 5.0


async def _recovering(engine: Engine) -> None:
    async def step() -> bool:
        await effects.recover(engine)
        return False
    await repeat("recovering the journey outbox", step, RECOVER_EVERY_S)


async def supervised(settings: Settings) -> None:
    engine = await Engine.open(settings)
    tasks = [asyncio.create_task(loop(engine)) for loop in
             (entry.run, inputs.run, timers.run, step_relay.run, _recovering,
              backlog.run, goal_sweep.run)]
    loop = asyncio.get_running_loop()

    def stopping() -> None:
        exit_within()
        for task in tasks:
            task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping)
    try:
        await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        pass
    finally:
        for task in tasks:
            task.cancel()
        await engine.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m services.journeys")
    parser.add_argument("--allow-local-targets", action="store_true")
    arguments = parser.parse_args()
    configure_logging("journeys")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = get_settings()
    if arguments.allow_local_targets:
        settings = settings.model_copy(update={"journeys_allow_local_targets": True})
    start_http_server(settings.journeys_metrics_port, addr=settings.metrics_host)
    heap.settle()
    asyncio.run(supervised(settings))
