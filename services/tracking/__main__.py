"""Run the tracking service: ``python -m services.tracking``."""

from services.tracking.app import create_app
from shared.logging_setup import configure_logging
from shared.settings import get_settings
from shared.shutdown import serve_http

if __name__ == "__main__":
    configure_logging("tracking")
    settings = get_settings()
    # No proxy headers: nothing here reads the client's address or scheme (redirects go
    # to stored absolute URLs, forms post to relative paths), so no middleware per request.
    serve_http(create_app(settings), settings.tracking_host, settings.tracking_port,
               proxy_headers=False)
