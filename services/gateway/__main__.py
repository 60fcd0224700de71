"""Run the gateway: ``python -m services.gateway``."""

from services.gateway.app import create_app
from shared.logging_setup import configure_logging
from shared.settings import get_settings
from shared.shutdown import serve_http

if __name__ == "__main__":
    configure_logging("gateway")
    settings = get_settings()
    serve_http(create_app(settings), settings.gateway_host, settings.gateway_port)
