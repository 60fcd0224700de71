"""A provider reached over HTTP: one JSON payload per message, keyed by its message id."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel

from shared.adapters.http_provider import HttpProvider
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import SendRequest


@dataclass
class HttpHandOver:
    http: HttpProvider
    payload: Callable[[SendRequest, RenderedMessage], BaseModel]

    async def hand_over(self, request: SendRequest, rendered: RenderedMessage) -> str | None:
        return await self.http.send(self.payload(request, rendered), request.messageId)

    async def close(self) -> None:
        await self.http.close()
