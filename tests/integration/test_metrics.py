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


async def test_the_admin_api_counts_its_requests_by_route_and_answer(
    admin: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    url = f"http://127.0.0.1:{settings.admin_port}/metrics"

    def count(text: str, route: str, status: str) -> float:
        line = f'parcours_admin_requests_total{{method="GET",route="{route}",status="{status}"}}'
        return next((float(x.split()[-1]) for x in text.splitlines()
                     if x.startswith(line)), 0.0)

    route = "/admin/v1/events/{event_id}"
    before = (await http.get(url)).text
    assert (await admin.get("/events/EVTnoSuchEvent")).status_code == 404
    assert (await admin.get("/events")).status_code == 200
    after = (await http.get(url)).text
    assert count(after, route, "404") == count(before, route, "404") + 1
    assert count(after, "/admin/v1/events", "200") >= count(before, "/admin/v1/events", "200") + 1
    assert "parcours_admin_request_seconds_bucket" in after
    assert "EVTnoSuchEvent" not in after  # route templates, never ids
