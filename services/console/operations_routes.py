"""Operations: throughput, statuses by outcome, messages sent, consumer lag and dead
letters over the last hour, per minute, from ``GET /admin/v1/metrics/summary`` (the
admin's sampling of every service's /metrics: system-wide, not per tenant), refreshed
every 10 s; which services answer; a link to the Grafana dashboard."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.console.charts import sparkline
from services.console.web import Api, SessionDep, render

router = APIRouter()
SECTIONS = (("throughput", "Events accepted"), ("statuses", "Statuses by outcome"),
            ("sent", "Messages sent"), ("failed", "Messages failed"),
            ("deadLetters", "Dead letters"))


def _charts(summary: dict[str, Any]) -> list[dict[str, Any]]:
    sections = []
    for key, title in SECTIONS:
        series = summary.get(key) or {}
        rows = [{"name": name, "spark": sparkline(values)}
                for name, values in sorted(series.items())]
        sections.append({"key": key, "title": title, "rows": rows})
    lag = (summary.get("consumerLag") or {})
    sections.append({"key": "consumerLag", "title": "Consumer lag (records)", "rows": [
        {"name": group, "spark": sparkline(values), "now": lag.get("now", {}).get(group)}
        for group, values in sorted((lag.get("perMinute") or {}).items())]})
    return sections


async def _summary(api: Any, minutes: int) -> dict[str, Any]:
    summary: dict[str, Any] = await api.get("/metrics/summary", minutes=minutes)
    return summary


@router.get("/operations")
async def operations(request: Request, session: SessionDep, api: Api,
                     minutes: Annotated[int, Query(ge=5, le=60)] = 60) -> Response:
    summary = await _summary(api, minutes)
    return render(request, "operations.html", session, title="Operations", summary=summary,
                  sections=_charts(summary), minutes=minutes)


@router.get("/operations/summary")
async def operations_fragment(request: Request, session: SessionDep, api: Api,
                              minutes: Annotated[int, Query(ge=5, le=60)] = 60) -> Response:
    summary = await _summary(api, minutes)
    return render(request, "_operations.html", session, summary=summary,
                  sections=_charts(summary), minutes=minutes)
