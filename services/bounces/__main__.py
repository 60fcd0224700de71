"""Run the bounce service: ``python -m services.bounces`` (SMTP on bounces_smtp_port,
metrics and health on bounces_metrics_port)."""

import asyncio
import logging

from services.bounces.app import serve
from shared import heap
from shared.logging_setup import configure_logging
from shared.settings import get_settings

if __name__ == "__main__":
    configure_logging("bounces")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # a line per SMTP command
    heap.settle()
    asyncio.run(serve(get_settings()))
