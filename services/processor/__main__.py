"""Run the processor: ``python -m services.processor``."""

import logging
import signal

from faust.worker import Worker
from prometheus_client import start_http_server

from services.processor.app import app, settings
from shared.logging_setup import redact_handlers
from shared.shutdown import exit_within


class BoundedWorker(Worker):
    """Faust's worker, with the shutdown deadline armed by the signal that stops it: a
    graceful stop can wait forever on a broker that is away."""

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        exit_within()
        super()._schedule_shutdown(signal)

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        redact_handlers(logger)  # Faust's handlers, not configure_logging's


if __name__ == "__main__":
    start_http_server(settings.processor_metrics_port, addr=settings.metrics_host)
    BoundedWorker(app, loglevel="INFO").execute_from_commandline()
