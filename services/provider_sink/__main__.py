"""Run the provider sink: ``python -m services.provider_sink``."""

import asyncio

from services.provider_sink.app import serve
from shared.logging_setup import configure_logging
from shared.settings import get_settings

if __name__ == "__main__":
    configure_logging("provider-sink")
    asyncio.run(serve(get_settings()))
