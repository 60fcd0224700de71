"""Run the SMTP sink: ``python -m services.smtp_sink`` for transactional mail (smtp_port,
HTTP on smtp_sink_http_port), ``--bulk`` for the bulk relay (smtp_bulk_port, HTTP on
smtp_bulk_sink_http_port), ``--secondary`` for the second transactional relay
(smtp_secondary_port, HTTP on smtp_secondary_sink_http_port)."""

import argparse
import asyncio

from services.smtp_sink.app import serve
from shared.logging_setup import configure_logging
from shared.sending.priority import lower_cpu_priority
from shared.settings import get_settings

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m services.smtp_sink", description=__doc__)
    parser.add_argument("--bulk", action="store_true", help="be the bulk email relay")
    parser.add_argument("--secondary", action="store_true",
                        help="be the second transactional relay (failover)")
    arguments = parser.parse_args()
    bulk, secondary = arguments.bulk, arguments.secondary
    configure_logging("smtp-sink-bulk" if bulk else "smtp-sink-2" if secondary else "smtp-sink",
                      redact=False)
    if bulk:  # it stands in for the marketing relay, which runs elsewhere in production
        lower_cpu_priority(get_settings().sender_bulk_nice)
    asyncio.run(serve(get_settings(), bulk=bulk, secondary=secondary))
