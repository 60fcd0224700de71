"""The reactions relay, the only one: what the tracking service, the gateway and the
bounce service record (``reaction_store``: each reaction with its outbox row, in
PostgreSQL before the request or mail is answered) produced to ``parcours.reactions.v1``,
oldest first, and taken out of the outbox in the same transaction. Replicas of this
service share the work (SKIP LOCKED); while none runs, reactions wait in the outbox,
never lost, and the recording services answer as before (none of them holds a Kafka
client for reactions).

It runs here rather than in each recording service: producing is work of its own
(the records' batches and their partitioning, in Python), and under a click flood it
took about 9 % of the tracking service's one event loop (py-spy), which the redirects
need; three relays also polled the outbox ten times a second each, and took a flood in
more, smaller batches. Here a round can take 1,000 rows (in the tracking service 1,000 at
once stalled the clicks in flight).
"""

from __future__ import annotations

import asyncio
import logging

from services.reactions.metrics import RELAYED
from shared.adapters import reaction_store
from shared.adapters.postgres import OwnConnection
from shared.adapters.producer import RenewingProducer
from shared.settings import Settings

log = logging.getLogger(__name__)
# Polled this often while nothing is old enough to take (reaction_store.GATHER_S: a flood
# goes to Kafka in batches of about that long, not a few rows per round trip).
RELAY_INTERVAL_S = 0.1
RELAY_BATCH = 1_000


async def run(settings: Settings) -> None:
    """Until cancelled. A slow or absent Kafka, or PostgreSQL away, delays this loop only:
    the rows stay in the outbox (a failed round puts back what it took)."""
    producer = RenewingProducer(settings, "reactions-relay")
    producer.start_in_background()
    connection = OwnConnection(settings.pg_dsn)  # no pool reset after each round
    try:
        while True:
            try:
                relayed = await reaction_store.relay(await connection(), producer,
                                                     RELAY_BATCH, reaction_store.GATHER_S)
                RELAYED.inc(relayed)
                if relayed:
                    continue
            except Exception as error:  # PostgreSQL or Kafka away: try again shortly
                log.warning("relaying reactions failed (%s); retrying", error)
                await asyncio.sleep(1.0)
            await asyncio.sleep(RELAY_INTERVAL_S)
    finally:
        await connection.close()
        await producer.stop()
