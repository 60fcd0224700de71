"""Run the processor: ``python -m services.processor``."""

from prometheus_client import start_http_server

from services.processor.app import main
from shared.logging_setup import configure_logging
from shared.settings import get_settings

if __name__ == "__main__":
    configure_logging("processor")
    settings = get_settings()
    start_http_server(settings.processor_metrics_port, addr=settings.metrics_host)
    main(settings)
