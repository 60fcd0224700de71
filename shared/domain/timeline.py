"""A transactional message's timeline: when it passed each stage of the chain.

Recorded without a write of its own: the gateway's acceptance is on the trigger record
(``acceptedAt``); the processor adds when it consumed, decided and produced the message
as one header of the send record (``HEADER``); the sender adds when it consumed, claimed,
rendered and handed it over, and the whole list goes into the message's trace row at
settling (``message_trace.timeline``), whose ``at`` is when it settled. Times are Unix
seconds, in ``STAGES`` order; a stage that was not seen (a record written before this
existed, a message from the retry schedule) is ``NaN``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# Each stage's duration is measured from the one before it; the histogram's ``stage``
# label takes these values (``accepted`` has none: it starts the clock).
STAGES = ("accepted", "consumed", "decided", "produced", "sender_consumed", "claimed",
          "rendered", "handed_over", "settled")
PROCESSOR_STAGES = STAGES[1:4]  # carried by the send record's header
HEADER = "parcours-timeline"
# 1 ms to 10 s, and a little under: a stage of a quiet chain takes well under 1 ms.
BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0,
           5.0, 10.0)


def encode(marks: Sequence[float]) -> bytes:
    """The processor's marks for the header: microseconds are enough."""
    return ",".join(f"{m:.6f}" for m in marks).encode()


def decode(raw: bytes | None) -> tuple[float, ...]:
    """The header's marks, ``PROCESSOR_STAGES`` long; NaN for what is missing or unreadable
    (a header is never a reason to refuse a record)."""
    marks: list[float] = []
    if raw:
        for part in raw.split(b",")[:len(PROCESSOR_STAGES)]:
            try:
                marks.append(float(part))
            except ValueError:
                marks.append(math.nan)
    return tuple(marks) + (math.nan,) * (len(PROCESSOR_STAGES) - len(marks))


def from_headers(headers: Sequence[tuple[str, bytes]] | None) -> tuple[float, ...]:
    for name, value in headers or ():
        if name == HEADER:
            return decode(value)
    return decode(None)


def durations(marks: Sequence[float]) -> dict[str, float]:
    """Each stage's time since the stage before it (in ``STAGES`` order, from the second);
    a stage whose mark or whose predecessor's is missing is left out."""
    found: dict[str, float] = {}
    for stage, before, after in zip(STAGES[1:], marks, marks[1:], strict=False):
        if not (math.isnan(before) or math.isnan(after)):
            found[stage] = after - before
    return found


def literal(marks: Sequence[float]) -> str:
    """A PostgreSQL array literal of the marks (``NaN`` as NULL)."""
    return "{" + ",".join("NULL" if math.isnan(m) else f"{m:.6f}" for m in marks) + "}"
