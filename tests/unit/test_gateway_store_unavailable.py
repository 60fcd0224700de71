"""A gateway or admin route that meets PostgreSQL unreachable answers 503 with
Retry-After, not 500, whether or not it says so itself (profile reads, erasure, batch,
history, export; the admin API's routes)."""

import asyncpg
import httpx
import pytest

from services.admin.app import create_app as create_admin
from services.gateway.app import create_app


@pytest.mark.parametrize("error", [
    ConnectionRefusedError(111, "Connect call failed"),
    FileNotFoundError(2, "No such file or directory"),  # the unix socket, PostgreSQL stopped
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
])
@pytest.mark.parametrize("service", ["gateway", "admin"])
async def test_an_unreachable_store_is_503_with_retry_after(error: Exception, service: str
                                                            ) -> None:
    app = create_app() if service == "gateway" else create_admin()

    @app.get("/store")
    async def store() -> None:
        raise error

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gateway") as client:
        response = await client.get("/store")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
