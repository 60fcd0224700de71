"""B2's server: a bare FastAPI endpoint that parses the gateway's JSON body and answers 202.

Run as its own process (``python -m bench.b2_app PORT``) with the gateway's uvicorn
settings: one worker, uvloop, httptools, access log off. The body model is the one the
gateway builds for EVTbench, so both validate exactly the same thing; no Kafka, no DB.
"""

import sys

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from bench.common import BENCH_EVENT
from shared.domain.events import build_ingest_model

IngestBody = build_ingest_model(BENCH_EVENT)


class Accepted(BaseModel):  # the gateway's response shape
    pKey: str
    href: str
    status: str = "pending"


app = FastAPI()


@app.post("/v1/events/{event_id}", status_code=202, response_model=Accepted)
async def post_event(event_id: str, body: IngestBody) -> Accepted:  # type: ignore[valid-type]
    return Accepted(pKey="bench", href=f"/v1/events/{event_id}/bench")


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
                access_log=False, log_level="warning", workers=1)
