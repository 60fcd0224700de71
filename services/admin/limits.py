"""What the admin API accepts at most, so that one request cannot hold megabytes of
memory or store them: a body limit (413) and limits per message part and label (422
naming the field). Templates are small; these leave room for rich HTML emails."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024  # a request body, in bytes
MAX_LABEL = 200  # an event's label, in characters
# A message part, in characters: SMTP readers truncate long subjects; an HTML email past
# about 100 KB is clipped by Gmail; SMS and push payloads are small.
MAX_PART = {"subject": 1_000, "html": 500_000, "text": 200_000, "title": 1_000,
            "body": 4_000, "data": 4_000}
MAX_DATA_KEYS = 50  # keys of a push message's data

_TOO_LARGE = f"the body is over {MAX_BODY_BYTES} bytes, the admin API's limit"


def part_problems(template: dict[str, Any]) -> list[tuple[list[str], str]]:
    """Where a message's parts are over their limits, and why."""
    found: list[tuple[list[str], str]] = []
    for part, value in template.items():
        limit = MAX_PART.get(part)
        if limit is None:
            continue
        if isinstance(value, str) and len(value) > limit:
            found.append(([part], f"at most {limit} characters ({len(value)} sent)"))
        elif isinstance(value, dict):
            if len(value) > MAX_DATA_KEYS:
                found.append(([part], f"at most {MAX_DATA_KEYS} keys ({len(value)} sent)"))
            found += [([part, key], f"at most {limit} characters ({len(item)} sent)")
                      for key, item in value.items() if isinstance(item, str)
                      and len(item) > limit]
    return found


class BodyLimit:
    """413 for a body over ``MAX_BODY_BYTES``: at once from its Content-Length, else (a
    chunked body) as soon as the received bytes pass it, before anything is parsed."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await JSONResponse({"detail": _TOO_LARGE}, 413)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:  # answered by FastAPI's handler, as a 413
                raise HTTPException(413, _TOO_LARGE)
            return message

        await self.app(scope, limited, send)
