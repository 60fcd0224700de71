"""Run the admin API: ``python -m services.admin``."""

from services.admin.app import create_app
from shared.logging_setup import configure_logging
from shared.settings import get_settings
from shared.shutdown import serve_http

if __name__ == "__main__":
    configure_logging("admin")
    settings = get_settings()
    serve_http(create_app(settings), settings.admin_host, settings.admin_port)
