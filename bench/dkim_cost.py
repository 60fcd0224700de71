"""DKIM's cost per message, apart from P6: the email sender's encoding of a rendered
message alone, then encoding and signing (RSA 2048, relaxed/relaxed, the headers the sender
signs), in the same run. ``python -m bench.dkim_cost [messages]``.

Two message sizes: the bench template (a few hundred bytes) and a newsletter of 60 kB
(HTML and text), since the body hash grows with the body while the RSA signature does not.
Beside it,
dkimpy's own ``dkim.sign`` (its RSA in Python), which shared/adapters/dkim.py replaces.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import dkim as dkimpy

from bench.stats import cpu_us_per_call
from shared.adapters import dkim
from shared.adapters.mime import encode_email
from shared.domain.events import Channel
from shared.domain.rendering import RenderedMessage
from shared.domain.sender_identity import SIGNED_HEADERS

RUNS = 7
SMALL = {"subject": "Order A-1042", "html": "<p>Order A-1042: 12.50</p><p>sent-at=1</p>",
         "text": "order=A-1042\nsent-at=1\n"}
LARGE = {"subject": "Our autumn collection",
         "html": "<p>" + "Boots, coats and scarves for the cold days ahead. " * 600 + "</p>",
         "text": "Boots, coats and scarves for the cold days ahead.\n" * 600}


def run(messages: int) -> list[tuple[str, float, float, float, int]]:
    pair = dkim.generate_key()
    key = dkim.SigningKey("shop.example.com", "s1", pair.private_pem)
    rows = []
    for label, parts in (("bench template", SMALL), ("newsletter", LARGE)):
        rendered = RenderedMessage(Channel.EMAIL, parts, {})

        def encode(rendered: RenderedMessage = rendered) -> bytes:
            return encode_email(rendered, sender="Shop <news@shop.example.com>",
                                recipient="ada@example.org", message_id="m-1",
                                domain="parcours.localhost")

        def sign(encode: Callable[[], bytes] = encode) -> bytes:
            message = encode()
            return dkim.signature(message, key) + message

        def dkimpy_sign(encode: Callable[[], bytes] = encode) -> bytes:
            message = encode()
            return bytes(dkimpy.sign(message, b"s1", b"shop.example.com", pair.private_pem,
                                     canonicalize=(b"relaxed", b"relaxed"),
                                     include_headers=list(SIGNED_HEADERS))) + message

        encoded = cpu_us_per_call(encode, messages, RUNS)
        signed = cpu_us_per_call(sign, messages, RUNS)
        theirs = cpu_us_per_call(dkimpy_sign, max(messages // 10, 20), RUNS)
        rows.append((label, encoded, signed, theirs, len(encode())))
    return rows


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    print(f"DKIM cost per message: CPU µs, best of {RUNS} runs of {messages} messages")
    print(f"{'message':<18} {'bytes':>7} {'encode µs':>10} {'encode+sign µs':>15} "
          f"{'DKIM µs':>8} {'signs/s':>8} {'dkimpy.sign µs':>15}")
    for label, encoded, signed, theirs, size in run(messages):
        print(f"{label:<18} {size:>7} {encoded:>10.0f} {signed:>15.0f} "
              f"{signed - encoded:>8.0f} {1e6 / (signed - encoded):>8.0f} "
              f"{theirs - encoded:>15.0f}")


if __name__ == "__main__":
    main()
