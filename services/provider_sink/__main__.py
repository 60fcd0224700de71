"""Run the provider sink: ``python -m services.provider_sink`` (``--secondary``: the second
provider the senders fail over to, on provider_sink_secondary_port)."""

import argparse
import asyncio

from services.provider_sink.app import serve
from shared.logging_setup import configure_logging
from shared.settings import get_settings

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m services.provider_sink", description=__doc__)
    parser.add_argument("--secondary", action="store_true", help="be the second provider")
    secondary = parser.parse_args().secondary
    configure_logging("provider-sink-2" if secondary else "provider-sink", redact=False)
    asyncio.run(serve(get_settings(), secondary))
