"""Every service exposes Prometheus metrics, with bounded labels and no personal data."""

import httpx
import pytest

from tests.integration.conftest import GATEWAY, SINK, settings

ENDPOINTS = {
    "gateway": (f"{GATEWAY}/metrics", "parcours_gateway_events_accepted_total"),
    "processor": (f"http://127.0.0.1:{settings.processor_metrics_port}/metrics",
                  "parcours_processor_events_total"),
    "sender-email": (f"http://127.0.0.1:{settings.sender_email_metrics_port}/metrics",
                     "parcours_accepted_to_smtp_seconds_bucket"),
    "smtp-sink": (f"{SINK}/metrics", "parcours_smtp_sink_received_total"),
}


@pytest.mark.parametrize("service", sorted(ENDPOINTS))
async def test_service_exposes_its_metrics(http: httpx.AsyncClient, service: str) -> None:
    url, name = ENDPOINTS[service]
    text = (await http.get(url)).text
    assert name in text
    assert "@" not in text, "an email address leaked into a metric"
