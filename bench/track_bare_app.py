"""TRACK's baseline server: a bare FastAPI endpoint shaped like the click redirect (a path
parameter in, a 302 out), nothing verified, looked up or recorded. Its own process
(``python -m bench.track_bare_app PORT``) with the services' uvicorn settings: one worker,
uvloop, httptools, access log off."""

import sys

import uvicorn
from fastapi import FastAPI
from starlette.responses import Response

app = FastAPI(openapi_url=None)


@app.get("/c/{token}")
async def clicked(token: str) -> Response:
    return Response(status_code=302, headers={"Location": "https://shop.example/a"})


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
                access_log=False, log_level="warning", workers=1)
