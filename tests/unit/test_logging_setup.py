"""The logs' last line of defence: addresses, phone numbers and key secrets replaced."""

import logging
import sys

import pytest

from shared.domain.api_keys import Scope, format_key
from shared.logging_setup import Redact, redact


@pytest.mark.parametrize(("line", "expected"), [
    ("to ann.b+x@example.co.uk now", "to [redacted] now"),
    ("sms to +33612345678, +1 555 0100", "sms to [redacted], +1 555 0100"),
    (f"key {format_key(Scope.ADMIN, 'abcdefghijkl', 'Z' * 43)}",
     "key prc_admin_abcdefghijkl_[redacted]"),
    ("key prc_ingest_abcdefghijkl revoked", "key prc_ingest_abcdefghijkl revoked"),
    ("postgresql://parcours@/parcours?host=/x at 2026-12-04T00:00:00+00:00 #+4412",
     "postgresql://parcours@/parcours?host=/x at 2026-12-04T00:00:00+00:00 #+4412"),
])
def test_redact_hides_only_personal_data_and_secrets(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_the_filter_redacts_the_arguments_and_the_exceptions_text() -> None:
    try:
        raise ValueError("input ann@example.com refused")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "for %s (%d)",
                                   ("bob@example.com", 3), exc_info=sys.exc_info())
    assert Redact().filter(record)
    text = logging.Formatter().format(record)
    assert text.startswith("for [redacted] (3)")
    assert "ValueError: input [redacted] refused" in text
    assert "@example.com" not in text
