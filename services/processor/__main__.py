"""Run the processor: ``python -m services.processor``."""

from faust.worker import Worker
from prometheus_client import start_http_server

from services.processor.app import app, settings

if __name__ == "__main__":
    start_http_server(settings.processor_metrics_port, addr=settings.metrics_host)
    Worker(app, loglevel="INFO").execute_from_commandline()
