"""``GET /admin/v1/metrics/summary?minutes=60``: what the console's operations page shows,
from the admin's own sampling of the services' metrics (metrics_summary.py).

The metrics are the whole system's, every tenant's traffic together (``"scope":
"system"``): any admin key reads the same figures. Each series has one value a minute
over the last ``minutes`` (at most 60, the sampler's ring), oldest first, the last being
the current minute so far; ``null`` where the sampler saw no pair of scrapes (it was not
running). Where each figure comes from:

- ``throughput``: ``accepted`` events answered 202 by the gateway
  (``parcours_gateway_events_accepted_total``), ``rejected`` refused by it, ``kafka``
  records produced straight to Kafka that the processor admitted;
- ``statuses``: what the processor recorded, by status (``parcours_processor_events_total``:
  processing, excluded, paused, routingFailed, tooOld…), with the senders' ``processed``
  (``parcours_sender_sent_total``) and ``deliveryFailed`` (``parcours_sender_failed_total``);
- ``sent`` and ``failed``: the senders' by channel (both lanes);
- ``deadLetters``: records the processor and profile-ingest sent to the dead letters;
- ``consumerLag``: each consumer group's records still to read, summed over its topics
  (``parcours_kafka_consumer_lag_records``, read every 15 s by the reactions service):
  ``now`` from the latest scrape, ``perMinute`` the most of each minute's scrapes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request

from services.admin.dependencies import AdminCaller
from services.admin.metrics_summary import Sampler, targets
from shared.domain.metrics_summary import HORIZON_S, MINUTE, Series, summarise


@asynccontextmanager
async def sampling(app: FastAPI) -> AsyncIterator[None]:
    """The sampler runs as long as the admin API (the app's lifespan, merged)."""
    settings = app.state.settings
    app.state.metrics_sampler = Sampler(targets(settings), settings.admin_metrics_sample_s)
    await app.state.metrics_sampler.start()
    try:
        yield
    finally:
        await app.state.metrics_sampler.stop()


router = APIRouter(prefix="/admin/v1/metrics", tags=["operations"], lifespan=sampling)
MAX_MINUTES = int(HORIZON_S // MINUTE)


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat()


def _number(value: float | None) -> float | int | None:
    return int(value) if value is not None and value.is_integer() else value


def _series(series: Series) -> dict[str, list[float | int | None]]:
    return {name: [_number(v) for v in values] for name, values in sorted(series.items())}


@router.get("/summary")
async def metrics_summary(
    request: Request, _caller: AdminCaller,
    minutes: Annotated[int, Query(ge=1, le=MAX_MINUTES, description=(
        "the window: the last N minutes, one value a minute"))] = 60,
) -> dict[str, Any]:
    """Throughput, statuses by outcome, messages sent and failed by channel, dead letters
    and consumer lag per minute over the last ``minutes``, and which services answered
    the sampler: the system's, not the caller's tenant's alone."""
    sampler: Sampler = request.app.state.metrics_sampler
    now = datetime.now(UTC).timestamp()
    summary = summarise(sampler.ring.history(), now, minutes)
    settings = request.app.state.settings
    return {
        "scope": "system",
        "minutes": minutes,
        "resolutionSeconds": int(MINUTE),
        "from": _iso(summary.starts[0]),
        "to": _iso(now),
        "minuteStarts": [_iso(start) for start in summary.starts],
        "covered": summary.covered,
        "throughput": _series(summary.throughput),
        "statuses": _series(summary.statuses),
        "sent": _series(summary.sent),
        "failed": _series(summary.failed),
        "deadLetters": _series(summary.dead_letters),
        "consumerLag": {"now": {g: _number(v) for g, v in sorted(summary.lag_now.items())},
                        "perMinute": _series(summary.lag)},
        "services": [{"name": t.name, "url": t.url, "up": sampler.states[t.name].up,
                      "lastScrapeAt": _iso(sampler.states[t.name].last_scrape_at),
                      "error": sampler.states[t.name].error} for t in sampler.targets],
        "sampler": {"intervalSeconds": sampler.interval_s, "rounds": sampler.rounds,
                    "lastRoundAt": _iso(sampler.last_round_at),
                    "lastRoundSeconds": sampler.last_round_s,
                    "lastRoundCpuSeconds": sampler.last_round_cpu_s},
        # the console's link to the dashboard
        "grafana": settings.console_grafana_url,
    }
