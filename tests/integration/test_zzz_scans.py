"""After everything else in the session (marker ``after_all``, tests/conftest.py): no
personal data or secret in any service log, and every metric label value from a fixed set
or an id the admin created, fewer than 10,000 series in all (TARGETS.md, Security).

The log scan reads only what this session appended to ``.run/logs/*.log`` (the stack keeps
its logs across sessions; tests/session_logs.py notes where each ended at the start). The
local sinks are left out: holding what was sent, addresses included, is their job. Its
first test sends a little of everything that could leak, so the scan means something when
the module runs alone; ``test_the_log_scan_finds_a_planted_leak`` shows it can fail.
"""

from __future__ import annotations

import ast
import re
import uuid
from collections.abc import Iterable
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.domain.api_keys import Scope, format_key
from tests.integration.conftest import (
    GATEWAY,
    ROOT,
    final_status,
    publish_event,
    settings,
    unique_email,
)
from tests.session_logs import LOGS, OFFSETS, session_start, written_since

pytestmark = pytest.mark.after_all

SINKS = ("smtp-sink", "provider-sink")
EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})(?![\w.-]*@)")
PHONE = re.compile(rb"(?<![\w+])\+[1-9]\d{7,14}(?!\d)")  # E.164: + and 8 to 15 digits
SECRET = re.compile(
    rb"prc_(?:admin|ingest|kafka|profiles)_[a-z0-9]{12}_[A-Za-z0-9_-]{6,}"  # an API key's
    rb"|whsec_[A-Za-z0-9_-]{6,}"  # a webhook endpoint's signing secret
    rb"|-----BEGIN [A-Z ]*PRIVATE KEY"  # a DKIM key
    rb"|\[redacted\]")  # shared/logging_setup.Redact hid one: the line itself needs fixing
MAX_SERIES = 10_000


def own_domains() -> tuple[bytes, ...]:
    """The platform's own mail domains: its From address and VERP return paths are not
    anyone's personal data (a tenant's recipients are)."""
    from_domain = settings.mail_from.rstrip(">").rsplit("@", 1)[1]
    return tuple({from_domain.encode(), settings.bounce_domain.encode(), b"parcours.localhost"})


def leaks(name: str, text: bytes) -> list[str]:
    """Each address, phone number or secret in ``text``, with the line it is on."""
    found = []
    for line in text.splitlines():
        hits = [m[0] for m in EMAIL.finditer(line)
                if not m[1].lower().endswith(own_domains())]
        hits += [m[0] for m in PHONE.finditer(line)] + [m[0] for m in SECRET.finditer(line)]
        found += [f"{name}: {hit.decode(errors='replace')!r} in {line[:300]!r}" for hit in hits]
    return found


def scanned_logs() -> list[Path]:
    return sorted(log for log in LOGS.glob("*.log") if not log.name.startswith(SINKS))


async def test_traffic_that_could_leak(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    """An email and an SMS sent, a 422 on a bad address, a 401 with a well-formed key's
    secret."""
    event_id = await publish_event(pool, "event")
    sent = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                           json={"email": unique_email("scan"), "ctx": {"item": "x"}})
    assert sent.status_code == 202, sent.text
    assert (await final_status(http, sent.json()["href"]))["status"] == "processed"
    sms_event = await publish_event(pool, "event", {"text": "{{ ctx.item }}"}, channel="sms")
    phone = f"+1555{uuid.uuid4().int % 10**7:07d}"
    sms = await http.post(f"{GATEWAY}/v1/events/{sms_event}",
                          json={"mobilePhone": phone, "ctx": {"item": "x"}})
    assert sms.status_code == 202, sms.text
    assert (await final_status(http, sms.json()["href"]))["status"] == "processed"
    bad = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                          json={"email": "scan leak@example.com", "ctx": {"item": "x"}})
    assert bad.status_code == 422
    stranger = format_key(Scope.INGEST, "scanscanscan", "s" * 43)
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {stranger}"}) as client:
        refused = await client.post(f"{GATEWAY}/v1/events/{event_id}",
                                    json={"email": unique_email("scan"), "ctx": {"item": "x"}})
    assert refused.status_code == 401


def test_the_log_scan_finds_a_planted_leak(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    """The self-check: a log with a leak of each kind among harmless look-alikes, written
    after the session's start like a service's would be. Only the four leaks are found
    (the last one hidden by the logging filter, whose line still needs fixing)."""
    assert pytestconfig.stash[OFFSETS], "the session did not note where the logs ended"
    log = tmp_path / "gateway.log"
    log.write_bytes(b"2026-12-04 00:00:00,000 gateway INFO: before the session ann@example.com\n")
    start = log.stat().st_size
    key = format_key(Scope.ADMIN, "abcdefghijkl", "Z" * 43)
    with log.open("ab") as file:
        file.write(b"INFO dsn postgresql://parcours@/parcours?host=/x&port=5433 (a DSN)\n"
                   b"INFO from no-reply@parcours.localhost to b+1.x@bounces.parcours.localhost\n"
                   b"INFO key prc_ingest_abcdefghijkl revoked at 2026-12-04T00:00:00+00:00\n"
                   b"WARNING refused bob.leak@example.com\n"
                   b"WARNING sms to +33612345678 failed\n"
                   + f"ERROR bad key {key}\n".encode()
                   + b"ERROR refused [redacted]\n")
    found = leaks(log.name, written_since(log, start))
    assert len(found) == 4, found
    assert "bob.leak@example.com" in found[0] and "+33612345678" in found[1]
    assert key in found[2] and "[redacted]" in found[3]


def test_no_service_log_holds_an_address_a_phone_number_or_a_secret(
    pytestconfig: pytest.Config
) -> None:
    logs = scanned_logs()
    assert {"gateway.log", "processor.log", "sender-email.log"} <= {log.name for log in logs}
    found = [leak for log in logs
             for leak in leaks(log.name, written_since(log, session_start(pytestconfig, log)))]
    assert not found, f"{len(found)} leaks, the first ones:\n" + "\n".join(found[:20])


# --- metric labels -------------------------------------------------------------------------

ID_LABELS = ("journey", "node", "goal", "branch")  # from journey definitions
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "other"})  # admin's
SKIPPED = ("le", "quantile")  # buckets and quantiles, not labels of ours


def metric_ports() -> dict[str, int]:
    """Every service's metrics port (the HTTP services serve /metrics on their own)."""
    ports = {name.removesuffix("_metrics_port"): port
             for name, port in settings.model_dump().items() if name.endswith("_metrics_port")}
    return {**ports, "gateway": settings.gateway_port, "admin": settings.admin_port,
            "tracking": settings.tracking_port}


def code_literals() -> frozenset[str]:
    """Every string constant in the services' and shared code: the fixed sets label values
    must come from (a value taken from data, such as an address or a reply, is in none)."""
    literals: set[str] = set()
    for source in [*ROOT.glob("services/**/*.py"), *ROOT.glob("shared/**/*.py")]:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                literals.add(node.value)
    return frozenset(literals)


async def admin_ids(pool: asyncpg.Pool) -> frozenset[str]:
    """Ids the admins created: journeys with their nodes, goals and branches, and rules."""
    async with pool.acquire() as connection:
        rows = await connection.fetch("""
            SELECT journey_id FROM journeys
            UNION SELECT jsonb_path_query(d, 'strict $.**.id') #>> '{}'
                    FROM (SELECT draft FROM journeys UNION ALL
                          SELECT definition FROM journey_versions) AS defs(d)
            UNION SELECT jsonb_path_query(d, 'strict $.**.name') #>> '{}'
                    FROM (SELECT draft FROM journeys UNION ALL
                          SELECT definition FROM journey_versions) AS defs(d)
            UNION SELECT rule_id FROM delivery_rules""")
    return frozenset(row[0] for row in rows if row[0] is not None)


def allowed(label: str, value: str, fixed: frozenset[str], ids: frozenset[str],
            routes: frozenset[str]) -> bool:
    if label in ID_LABELS or label == "rule":
        return value in ids or value in fixed
    if label == "route":
        return value in routes or value in fixed
    if label == "method":
        return value in HTTP_METHODS
    if label == "status" and re.fullmatch(r"[1-5]\d\d", value):
        return True  # an HTTP status code
    if label == "reason" and value.endswith("_permanent"):
        return value.removesuffix("_permanent") in fixed  # <provider>_permanent, senders'
    if label == "reason":  # dead letters: a reason's kind, before its colon
        return value in fixed or any(f.startswith(f"{value}:") for f in fixed)
    return value in fixed


def series_of(text: str) -> Iterable[tuple[str, dict[str, str]]]:
    for family in text_string_to_metric_families(text):
        if family.name.startswith(("python_", "process_")):
            continue  # prometheus_client's own collectors: fixed label sets
        for sample in family.samples:
            yield sample.name, sample.labels


async def test_metric_labels_are_fixed_or_admin_ids_and_series_are_bounded(
    pool: asyncpg.Pool
) -> None:
    fixed, ids = code_literals(), await admin_ids(pool)
    counts: dict[str, int] = {}
    bad: list[str] = []
    routes: set[str] = set()
    async with httpx.AsyncClient(timeout=10) as client:
        for port in (settings.gateway_port, settings.admin_port, settings.tracking_port):
            spec = await client.get(f"http://127.0.0.1:{port}/openapi.json")
            if spec.status_code == 200:
                routes.update(spec.json().get("paths", {}))
        for service, port in sorted(metric_ports().items()):
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
            assert response.status_code == 200, f"{service} serves no /metrics on {port}"
            series = list(series_of(response.text))
            counts[service] = len(series)
            bad += [f"{service}: {name}{{{label}={value!r}}}"
                    for name, labels in series for label, value in labels.items()
                    if label not in SKIPPED
                    and not allowed(label, value, fixed, ids, frozenset(routes))]
    print("series per service:", counts, "total", sum(counts.values()))
    assert {"gateway", "processor", "sender_email", "journeys"} <= counts.keys()
    assert not bad, f"{len(bad)} label values from data:\n" + "\n".join(sorted(set(bad))[:30])
    assert sum(counts.values()) < MAX_SERIES, counts


def test_the_label_check_refuses_values_from_data() -> None:
    """The self-check: an address, an unknown journey, a raw path and an SMTP reply fail."""
    fixed, ids = code_literals(), frozenset({"welcome", "mail"})
    routes = frozenset({"/admin/v1/events/{event_id}"})
    assert allowed("journey", "welcome", fixed, ids, routes)
    assert allowed("route", "/admin/v1/events/{event_id}", fixed, ids, routes)
    assert allowed("reason", "smtp_permanent", fixed, ids, routes)
    assert allowed("channel", "email", fixed, ids, routes)
    assert not allowed("journey", "someone-elses", fixed, ids, routes)
    assert not allowed("route", "/admin/v1/events/EVTcart", fixed, ids, routes)
    assert not allowed("reason", "550 mailbox ann@example.com unknown", fixed, ids, routes)
    assert not allowed("to", "+33612345678", fixed, ids, routes)
    assert not allowed("method", "TRACE", fixed, ids, routes)
