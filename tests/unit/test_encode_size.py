"""``encode``'s answer holds its JSON's size, not orjson's working buffer (4 kB or more
since orjson 3.12): kept by the thousand — a batch's records, a cohort's members — each
held a page."""

from __future__ import annotations

import subprocess
import sys

import orjson

from shared.adapters.kafka import encode

_KEPT = """
import sys
from shared.adapters.kafka import encode
values = [f"p-{i:07d}" for i in range(20_000)]
def rss_kb():
    return int(open("/proc/self/statm").read().split()[1]) * 4
before = rss_kb()
kept = [encode(v) for v in values]
print((rss_kb() - before) / len(values))
"""


def test_encode_is_orjsons_json() -> None:
    value = {"stepId": 1, "profileId": "p-é\"1", "members": [1, 2.5, None]}
    assert encode(value) == orjson.dumps(value)
    assert encode("x") == b'"x"'


def test_kept_encodings_hold_their_own_size() -> None:
    # A fresh interpreter: memory freed earlier in this one would be reused and hide it.
    held_kb = float(subprocess.run([sys.executable, "-c", _KEPT], capture_output=True,
                                   text=True, check=True).stdout)
    assert held_kb < 1.0, f"each kept encoding holds {held_kb:.2f} kB (orjson's buffer)"
