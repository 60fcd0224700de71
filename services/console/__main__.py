"""Run the web console: ``python -m services.console``."""

from services.console.app import create_app
from shared.logging_setup import configure_logging
from shared.settings import get_settings
from shared.shutdown import serve_http

if __name__ == "__main__":
    configure_logging("console")
    settings = get_settings()
    # Behind a TLS proxy the scheme comes from X-Forwarded-Proto: the session cookie is
    # then marked Secure (uvicorn trusts the loopback proxy by default).
    serve_http(create_app(settings), settings.console_host, settings.console_port,
               proxy_headers=True)
