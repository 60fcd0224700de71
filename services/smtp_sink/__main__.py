"""Run the SMTP sink: ``python -m services.smtp_sink``."""

import asyncio

from services.smtp_sink.app import serve
from shared.logging_setup import configure_logging
from shared.settings import get_settings

if __name__ == "__main__":
    configure_logging("smtp-sink")
    asyncio.run(serve(get_settings()))
