"""The console when the admin API does not answer (a closed port, no mock): signing in
says so and to try again, a page is a 503 saying nothing was changed, a form's refusal
for want of its CSRF token comes first, and /health/live still answers."""

import socket

import httpx

from services.console.app import create_app
from services.console.session import COOKIE
from shared.settings import Settings


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends


async def test_an_admin_api_that_does_not_answer_is_said_not_hidden():
    settings = Settings(console_admin_url=f"http://127.0.0.1:{closed_port()}")
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://console") as client:
        await client.get("/sign-in")
        token = client.cookies.get("parcours_console_signin")
        answer = await client.post("/sign-in", data={"api_key": "prc_admin_x", "next": "/",
                                                     "signin_token": token})
        assert answer.status_code == 503 and "try again" in answer.text
        assert COOKIE not in client.cookies

        sealed, _ = app.state.seal.seal("prc_admin_x", "acme", "ACME")
        client.cookies.set(COOKIE, sealed)
        page = await client.get("/events")
        assert page.status_code == 503 and page.headers["retry-after"] == "5"
        assert "Nothing was changed" in page.text
        refused = await client.post("/events", data={"eventId": "EVTx"})
        assert refused.status_code == 403  # no CSRF token: refused before any call
        assert (await client.get("/health/live")).status_code == 200
