"""Every service exposes Prometheus metrics, with bounded labels and no personal data."""

import httpx
import pytest

from tests.integration.conftest import GATEWAY, SINK, settings

ENDPOINTS = {
    "gateway": (f"{GATEWAY}/metrics", "parcours_gateway_events_accepted_total"),
    "admin": (f"http://127.0.0.1:{settings.admin_port}/metrics", "python_gc_objects_collected"),
    "processor": (f"http://127.0.0.1:{settings.processor_metrics_port}/metrics",
                  "parcours_processor_events_total"),
    "sender-email": (f"http://127.0.0.1:{settings.sender_email_metrics_port}/metrics",
                     'parcours_sender_duplicates_total{channel="email"}'),
    "smtp-sink": (f"{SINK}/metrics", "parcours_smtp_sink_received_total"),
    # The senders' duplicates counter: present from the start, before any message went out.
    "sender-sms": (f"http://127.0.0.1:{settings.sender_sms_metrics_port}/metrics",
                   'parcours_sender_duplicates_total{channel="sms"}'),
    "sender-push": (f"http://127.0.0.1:{settings.sender_push_metrics_port}/metrics",
                    'parcours_sender_duplicates_total{channel="push"}'),
    "provider-sink": (f"http://127.0.0.1:{settings.provider_sink_port}/metrics",
                      "parcours_provider_sink_requests_total"),
}


@pytest.mark.parametrize("service", sorted(ENDPOINTS))
async def test_service_exposes_its_metrics(http: httpx.AsyncClient, service: str) -> None:
    url, name = ENDPOINTS[service]
    text = (await http.get(url)).text
    assert name in text
    assert "@" not in text, "an email address leaked into a metric"
