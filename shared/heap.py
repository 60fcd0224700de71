"""What the garbage collector walks, and how often: not what a process imported, and
not every 700 allocations.

CPython's full collections walk every object the collector tracks. A service's imports
(FastAPI and pydantic's validators, aiokafka, asyncpg, Jinja2...) leave 75,000 or more
that live as long as the process, and every full collection walked them all again: about
40 ms of one core, during which nothing else on the event loop runs. Frozen once at
start (``gc.freeze``: moved to a generation no collection visits), they cost nothing
afterwards; what the service makes while it works is collected as before.

The youngest generation was collected every 700 allocations (CPython's default), each
time walking every young object alive: under load, the objects of every request in
flight. In the tracking service under a click flood (TRACK) that was 1,216-1,332
collections a command, 0.47-0.48 s; collected every 10,000 it is 27 collections, 0.09 s
(``gc.callbacks`` timing both). Garbage in reference cycles waits a little longer for
its collection: 10,000 allocations' worth at the most."""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations between collections of the youngest generation


def settle() -> None:
    """Collect what starting left behind, freeze the rest, collect the young less often:
    once per process, after its imports and set-up, before its work."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
