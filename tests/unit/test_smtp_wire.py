"""What DATA carries (RFC 5321 4.5.2, 4.1.1.4) and RFC 1870's SIZE."""

from __future__ import annotations

import pytest

from shared.adapters.smtp_wire import data_bytes, size_on_the_wire


@pytest.mark.parametrize(("message", "sent"), [
    (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
    (b"a\nb", b"a\r\nb\r\n.\r\n"),  # bare line feeds, no final line end
    (b"a\rb\r\n", b"a\r\nb\r\n.\r\n"),  # a bare carriage return
    (b".top\r\nx\r\n.\r\n..two\r\n", b"..top\r\nx\r\n..\r\n...two\r\n.\r\n"),
    (b"", b"\r\n.\r\n"),
])
def test_data_is_crlf_dot_stuffed_and_ended(message: bytes, sent: bytes) -> None:
    assert data_bytes(message) == sent


def test_size_counts_crlf_line_ends() -> None:
    assert size_on_the_wire(b"a\nb\r\n") == len(b"a\r\nb\r\n")
