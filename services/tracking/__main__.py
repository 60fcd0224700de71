"""Run the tracking service: ``python -m services.tracking``."""

from services.tracking.app import create_app
from shared.logging_setup import configure_logging
from shared.settings import get_settings
from shared.shutdown import serve_http

if __name__ == "__main__":
    configure_logging("tracking")
    settings = get_settings()
    serve_http(create_app(settings), settings.tracking_host, settings.tracking_port)
