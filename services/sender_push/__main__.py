"""Run the push sender: ``python -m services.sender_push``."""

from prometheus_client import start_http_server

from services.sender_push.app import SPEC
from shared.logging_setup import configure_logging
from shared.sending.app import main
from shared.settings import get_settings

if __name__ == "__main__":
    configure_logging(SPEC.stage)
    settings = get_settings()
    start_http_server(settings.sender_push_metrics_port, addr=settings.metrics_host)
    main(SPEC, settings)
