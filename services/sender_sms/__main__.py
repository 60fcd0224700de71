"""Run the SMS sender: ``python -m services.sender_sms``."""

from prometheus_client import start_http_server

from services.sender_sms.app import SPEC
from shared.logging_setup import configure_logging
from shared.sending.app import main
from shared.settings import get_settings

if __name__ == "__main__":
    configure_logging(SPEC.stage)
    settings = get_settings()
    start_http_server(settings.sender_sms_metrics_port, addr=settings.metrics_host)
    main(SPEC, settings)
