"""What the garbage collector walks: not what a process imported.

CPython's full collections walk every object the collector tracks. A service's imports
(FastAPI and pydantic's validators, aiokafka, asyncpg, Jinja2...) leave 75,000 or more
that live as long as the process, and every full collection walked them all again: about
40 ms of one core, during which nothing else on the event loop runs. Frozen once at
start (``gc.freeze``: moved to a generation no collection visits), they cost nothing
afterwards; what the service makes while it works is collected as before."""

from __future__ import annotations

import gc


def freeze_startup() -> None:
    """Collect what starting left behind, then freeze the rest: once per process, after
    its imports and set-up, before its work."""
    gc.collect()
    gc.freeze()
