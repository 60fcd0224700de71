"""Every service ends within 10 s of SIGTERM, whatever it is doing.

A graceful stop can wait on things that may never come: a broker that is away, a
produce retried forever, a database that does not answer. Each service stops gracefully
when it can, and a deadline armed by the first SIGTERM ends the process when it cannot.
Ending it is safe: every stage is at-least-once with idempotent effects, exactly as
after ``kill -9`` (which the crash tests exercise); what was not acknowledged comes again.
"""

from __future__ import annotations

import logging
import os
import threading
from types import FrameType
from typing import Any

import uvicorn

from shared import heap

log = logging.getLogger(__name__)
# Kubernetes' default grace period is 30 s; ours is 10 s, minus a margin for the exit.
STOP_DEADLINE_S = 8.0
# In-flight HTTP requests get this long to finish before their connections are closed.
HTTP_GRACE_S = 5

_armed = threading.Event()


def exit_within(deadline_s: float = STOP_DEADLINE_S) -> None:
    """Arm the deadline, once: past it the process exits (status 1) unless it already has.
    A thread, not the event loop: the loop may be the thing that is stuck."""
    if _armed.is_set():
        return
    _armed.set()
    timer = threading.Timer(deadline_s, _expire, args=(deadline_s,))
    timer.daemon = True
    timer.start()


def _expire(deadline_s: float) -> None:
    log.error("still stopping %.0f s after SIGTERM; exiting now (work not acknowledged "
              "is redelivered)", deadline_s)
    logging.shutdown()
    os._exit(1)


class Server(uvicorn.Server):
    """uvicorn's server, with the deadline armed by the signal that stops it."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        exit_within()
        super().handle_exit(sig, frame)


def http_config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    """The options every Parcours HTTP service runs with."""
    defaults: dict[str, Any] = {
        "loop": "uvloop", "http": "httptools", "log_level": "info",
        "access_log": False,  # costs ~15% and would log paths that carry event keys
        # uvicorn's records go to the root handlers: one format, and their tracebacks
        # through shared/logging_setup.Redact like every other line's
        "log_config": None,
        "timeout_graceful_shutdown": HTTP_GRACE_S,
    }
    return uvicorn.Config(app, host=host, port=port, **{**defaults, **options})


def serve_http(app: Any, host: str, port: int, **options: Any) -> None:
    heap.settle()
    Server(http_config(app, host, port, **options)).run()
