"""Run the bulk SMS sender: ``python -m services.sender_sms_bulk``."""

from prometheus_client import start_http_server

from services.sender_sms_bulk.app import SPEC
from shared.logging_setup import configure_logging
from shared.sending.app import main
from shared.sending.priority import Lane, lower_cpu_priority
from shared.settings import get_settings

if __name__ == "__main__":
    configure_logging(SPEC.stage)
    settings = get_settings()
    lower_cpu_priority(settings.sender_bulk_nice)
    start_http_server(settings.sender_sms_bulk_metrics_port, addr=settings.metrics_host)
    main(SPEC, settings, Lane.bulk(settings.sender_bulk_rate_per_s))
