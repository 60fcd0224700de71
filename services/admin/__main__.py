"""Run the admin API: ``python -m services.admin``."""

import uvicorn

from services.admin.app import create_app
from shared.logging_setup import configure_logging
from shared.settings import get_settings

if __name__ == "__main__":
    configure_logging("admin")
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.admin_host, port=settings.admin_port,
                loop="uvloop", http="httptools", access_log=False, log_level="info")
