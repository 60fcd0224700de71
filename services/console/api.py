"""The console's only back end: the admin API, called with the signed-in key. Its answers
come back as data, and its refusals as exceptions the pages show: a 422's errors by field
(next to the input they name), a 404 or 409's detail as a message, a revoked key as a
sign-in, an unreachable or failing API as "try again"."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.domain.exact import exact_json, read_exact

PREFIX = "/admin/v1"


class SignedOut(Exception):
    """The admin API no longer takes the session's key (revoked or deleted)."""


class ApiUnavailable(Exception):
    """The admin API did not answer, or answered 5xx or 429: nothing was decided."""


@dataclass
class ApiRefusal(Exception):
    status: int
    message: str
    fields: dict[str, str] = field(default_factory=dict)  # "fields.0.id" → why

    def __str__(self) -> str:
        return self.message


def field_key(loc: list[Any]) -> str:
    """An error's place as the console's inputs are named: ``["body", "fields", 0, "id"]``
    is ``fields.0.id``; the request part (body, query, path) is left out."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path") else loc)
    return ".".join(str(part) for part in parts) or "body"


def refusal(status: int, body: Any) -> ApiRefusal:
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        fields: dict[str, str] = {}
        for error in detail:
            if isinstance(error, dict):
                fields.setdefault(field_key(list(error.get("loc") or [])),
                                  str(error.get("msg", "invalid")))
        message = "; ".join(f"{key}: {why}" for key, why in fields.items())
        return ApiRefusal(status, message or "refused", fields)
    return ApiRefusal(status, str(detail) if detail else f"refused ({status})")


class AdminApi:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def call(self, api_key: str, method: str, path: str, *, json: Any = None,
                   params: dict[str, Any] | None = None, content: bytes | None = None
                   ) -> Any:
        headers = {"authorization": f"Bearer {api_key}"}
        if json is not None:  # Decimals written with their digits, as typed
            content = exact_json(json)
        if content is not None:
            headers["content-type"] = "application/json"
        try:
            answer = await self._client.request(method, PREFIX + path, params=params,
                                                content=content, headers=headers)
        except httpx.HTTPError as error:
            raise ApiUnavailable(f"the admin API did not answer ({type(error).__name__})"
                                 ) from error
        if answer.status_code == 401:
            raise SignedOut()
        if answer.status_code >= 500 or answer.status_code == 429:
            raise ApiUnavailable(f"the admin API answered {answer.status_code}")
        # read exactly: a sample's 19.90 stays 19.90 on the page (json would make it 19.9)
        body = read_exact(answer.content) if answer.content else None
        if answer.status_code >= 400:
            raise refusal(answer.status_code, body)
        return body


@dataclass(frozen=True)
class Caller:
    """The admin API as the signed-in user: every call carries the session's key."""
    api: AdminApi
    api_key: str

    async def get(self, path: str, **params: Any) -> Any:
        return await self.api.call(self.api_key, "GET", path,
                                   params={k: v for k, v in params.items() if v is not None})

    async def post(self, path: str, json: Any = None, content: bytes | None = None) -> Any:
        return await self.api.call(self.api_key, "POST", path, json=json, content=content)

    async def put(self, path: str, json: Any = None, content: bytes | None = None) -> Any:
        return await self.api.call(self.api_key, "PUT", path, json=json, content=content)

    async def delete(self, path: str) -> Any:
        return await self.api.call(self.api_key, "DELETE", path)
