"""One log format for every service; never log personal data (targets, ctx, profiles).

``Redact``, on every handler of the root logger, is the last line of defence: a line that
slips an address, a phone number or an API key's secret through anyway (an exception's
text quoting its input, say) is written with each replaced by ``[redacted]``. The lines
themselves must name messages and events by id: tests/integration/test_zzz_scans.py
fails on what leaked and on what this had to hide.
"""

from __future__ import annotations

import logging
import os
import re

_LEAKS = re.compile(
    r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}"  # an email address
    r"|(?<![\w+])\+[1-9]\d{7,14}(?!\d)"  # an E.164 phone number
    r"|(?<=prc_)((?:admin|ingest|kafka|profiles)_[a-z0-9]{12}_)[A-Za-z0-9_-]+"  # a secret
)


def _hide(match: re.Match[str]) -> str:
    return f"{match[1]}[redacted]" if match[1] else "[redacted]"


def redact(text: str) -> str:
    return _LEAKS.sub(_hide, text)


class Redact(logging.Filter):
    """Replaces addresses, phone numbers and key secrets in a record's message and in the
    text of its exception, before any formatter sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:  # args (), not None: Faust's formatter applies a non-tuple
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def redact_handlers(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        if not any(isinstance(f, Redact) for f in handler.filters):
            handler.addFilter(Redact())


def configure_logging(service: str, redact: bool = True) -> None:
    """``redact=False`` for the local sinks only: holding what was sent is their job, and
    the filter's 4 µs a line would weigh on the baselines measured against them."""
    logging.basicConfig(
        level=os.environ.get("PARCOURS_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
    )
    if redact:
        redact_handlers(logging.getLogger())
