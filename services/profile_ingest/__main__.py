"""Run profile-ingest: ``python -m services.profile_ingest``."""

from prometheus_client import start_http_server

from services.profile_ingest.app import main
from shared.logging_setup import configure_logging
from shared.sending.priority import lower_cpu_priority
from shared.settings import get_settings

if __name__ == "__main__":
    configure_logging("profile-ingest")
    settings = get_settings()
    lower_cpu_priority(settings.profile_ingest_nice)
    start_http_server(settings.profile_ingest_metrics_port, addr=settings.metrics_host)
    main(settings)
