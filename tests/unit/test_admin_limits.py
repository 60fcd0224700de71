"""The admin API's limits: per message part, and the body limit (413) even without a
Content-Length."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request

from services.admin.limits import MAX_DATA_KEYS, BodyLimit, part_problems


def test_parts_over_their_limits_are_named() -> None:
    assert part_problems({"subject": "s" * 1000, "html": "h", "text": "t"}) == []
    assert part_problems({"subject": "s" * 1001, "html": "h" * 500_001}) == [
        (["subject"], "at most 1000 characters (1001 sent)"),
        (["html"], "at most 500000 characters (500001 sent)")]
    data = {f"k{i}": "v" for i in range(MAX_DATA_KEYS + 1)} | {"big": "x" * 4001}
    assert part_problems({"data": data}) == [
        (["data"], f"at most {MAX_DATA_KEYS} keys ({MAX_DATA_KEYS + 2} sent)"),
        (["data", "big"], "at most 4000 characters (4001 sent)")]
    assert part_problems({"unknown": "x" * 10**6, "subject": 1}) == []  # others' checks


def app_with_limit(limit: int) -> httpx.AsyncClient:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"read": len(await request.body())}

    transport = httpx.ASGITransport(app=BodyLimit(app, limit))
    return httpx.AsyncClient(transport=transport, base_url="http://admin")


async def chunks(count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"x" * size


async def test_a_body_over_the_limit_is_413_with_or_without_a_content_length() -> None:
    async with app_with_limit(1000) as client:
        assert (await client.post("/echo", content=b"x" * 1000)).json() == {"read": 1000}
        assert (await client.post("/echo", content=b"x" * 1001)).status_code == 413
        chunked = await client.post("/echo", content=chunks(11, 100))
        assert chunked.status_code == 413
        assert "limit" in chunked.json()["detail"]
        assert (await client.post("/echo", content=chunks(10, 100))).json() == {"read": 1000}
