"""Opens and clicks on the real stack: an email sent through gateway → processor → email
sender → SMTP sink carries signed tracked links; the tracking service (port 8002) records
each open and click once in the reactions outbox, its relay produces them to
parcours.reactions.v1, its consumer adds them to the message's trace. Forged and altered
tokens are 404 with nothing recorded; machine requests are flagged; a click is answered
with Kafka unreachable."""

from __future__ import annotations

import time
import uuid
from html.parser import HTMLParser
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.tracking.app import create_app
from shared.domain.routing import message_id
from shared.domain.tracking_links import click_url, parse_keyring
from shared.topics import REACTIONS
from tests.integration.conftest import (
    GATEWAY,
    TENANT,
    add_profile,
    end_offsets,
    eventually,
    final_status,
    mails_to,
    publish_event,
    settings,
    unique_email,
)

TRACKING = f"http://127.0.0.1:{settings.tracking_port}"
BROWSER = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/120.0 Safari/537.36")
TEMPLATE = {
    "subject": "Links for {{ profile.first_name }}",
    "html": ('<html><body><p>{{ ctx.item }} for {{ profile.first_name }} &amp; co</p>'
             '<!-- <a href="https://hidden.example/">not a link</a> -->'
             '<a class="btn" href="https://shop.example/p?item=1&amp;ref=mail">shop</a> '
             '<a href="mailto:help@shop.example">help</a> <a href="#top">top</a> '
             '<a href="https://shop.example/cart">cart</a></body></html>'),
    "text": "{{ ctx.item }}: https://shop.example/p",
}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"] or "")
        if tag == "img" and values.get("src"):
            self.images.append(values["src"] or "")


async def send_tracked_email(http: httpx.AsyncClient, pool: asyncpg.Pool
                             ) -> tuple[str, _Links, str]:
    """A profile's email with links; its message id, its links as received, its HTML."""
    event_id = await publish_event(pool, "profile", TEMPLATE)
    email = unique_email("track")
    await add_profile(pool, email, "Tess")
    response = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                               json={"email": email, "ctx": {"item": "boots"}})
    assert response.status_code == 202
    body = response.json()
    assert (await final_status(http, body["href"]))["status"] == "processed"
    [mail] = await mails_to(http, email)
    links = _Links()
    links.feed(mail["html"])
    return message_id(TENANT, body["pKey"]), links, mail["html"]


async def sent_long_ago(pool: asyncpg.Pool, message: str) -> None:
    """The recipient reads it a minute later: past the window in which only scanners click."""
    await pool.execute("UPDATE tracked_messages SET sent_at = sent_at - interval '1 minute'"
                       " WHERE tenant_id = $1 AND message_id = $2", TENANT, uuid.UUID(message))


async def reactions_of(pool: asyncpg.Pool, message: str) -> list[dict[str, Any]]:
    """Its reactions; ``published``: produced to Kafka (no longer in the outbox)."""
    rows = await pool.fetch(
        "SELECT record, NOT EXISTS (SELECT 1 FROM reaction_outbox o WHERE (o.tenant_id,"
        " o.reaction_id) = (r.tenant_id, r.reaction_id)) AS published FROM reactions r"
        " WHERE tenant_id = $1 AND message_id = $2 ORDER BY recorded_at",
        TENANT, uuid.UUID(message))
    return [{**_json(r["record"]), "published": r["published"]} for r in rows]


def _json(value: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = orjson.loads(value) if isinstance(value, str | bytes) else value
    return decoded


async def on_the_topic(message: str, before: dict[int, int]) -> list[dict[str, Any]]:
    """Every record of the message on parcours.reactions.v1 between ``before`` and now."""
    until = await end_offsets(REACTIONS)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        partitions = [TopicPartition(REACTIONS.name, p) for p in before]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, before[tp.partition])
        positions = dict(before)

        async def read_to_end() -> bool:
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                for r in records:
                    positions[tp.partition] = r.offset + 1
                    value = orjson.loads(r.value)
                    if value["messageId"] == message:
                        found.append({"key": r.key, **value})
            return all(positions[p] >= until[p] for p in until)

        await eventually(read_to_end, "the reactions topic read to its end")
    finally:
        await consumer.stop()
    return found


async def test_an_open_and_a_click_are_one_reaction_each_however_often(
    http: httpx.AsyncClient, pool: asyncpg.Pool,
) -> None:
    before = await end_offsets(REACTIONS)
    message, links, html = await send_tracked_email(http, pool)
    await sent_long_ago(pool, message)
    # the links the author wrote, in order; the other schemes and the comment untouched
    assert [h.split("/c/")[0] for h in links.hrefs] == [
        TRACKING, "mailto:help@shop.example", "#top", TRACKING]
    assert '<!-- <a href="https://hidden.example/">not a link</a> -->' in html
    assert "Tess &amp; co" in html
    [pixel] = [src for src in links.images if src.startswith(f"{TRACKING}/o/")]

    headers = {"User-Agent": BROWSER}
    for _ in range(3):
        image = await http.get(pixel, headers=headers)
        assert image.status_code == 200 and image.headers["content-type"] == "image/gif"
        assert image.headers["cache-control"].startswith("no-store")
        click = await http.get(links.hrefs[0], headers=headers, follow_redirects=False)
        assert click.status_code == 302
        assert click.headers["location"] == "https://shop.example/p?item=1&ref=mail"

    async def both_published() -> list[dict[str, Any]] | None:
        rows = await reactions_of(pool, message)
        return rows if len(rows) == 2 and all(r["published"] for r in rows) else None

    rows = await eventually(both_published, "the open and the click relayed")
    records = await on_the_topic(message, before)
    assert sorted((r["kind"], r["machine"]) for r in records) == [
        ("clicked", False), ("opened", False)]
    [clicked] = [r for r in records if r["kind"] == "clicked"]
    assert clicked["link"] == {"index": 0, "url": "https://shop.example/p?item=1&ref=mail"}
    assert clicked["source"] == "tracking" and clicked["channel"] == "email"
    assert clicked["origin"]["kind"] == "event" and clicked["address"] is None
    assert {r["key"] for r in records} == {clicked["profileId"].encode()}
    assert {r["reactionId"] for r in records} == {r["reactionId"] for r in rows}

    async def traced() -> list[str] | None:
        outcomes = await pool.fetch(
            "SELECT outcome FROM message_trace WHERE tenant_id = $1 AND message_id = $2"
            " AND stage = 'reaction' ORDER BY outcome", TENANT, uuid.UUID(message))
        return [r["outcome"] for r in outcomes] if len(outcomes) >= 2 else None

    assert await eventually(traced, "the reactions in the message's trace") == [
        "clicked", "opened"]
    metrics = (await http.get(f"http://127.0.0.1:{settings.reactions_metrics_port}/metrics")).text
    assert 'parcours_reactions_total{kind="clicked",machine="false"}' in metrics


async def test_forged_altered_and_unknown_links_are_404_and_record_nothing(
    http: httpx.AsyncClient, pool: asyncpg.Pool,
) -> None:
    message, links, _ = await send_tracked_email(http, pool)
    token = links.hrefs[0].rsplit("/", 1)[1]
    key_id, body = token.split(".")
    middle = len(body) // 2
    altered = body[:middle] + ("A" if body[middle] != "A" else "B") + body[middle + 1:]
    keys = parse_keyring(settings.tracking_keys.get_secret_value())
    forger = parse_keyring(f"{key_id}:not-the-real-secret-at-all")
    [pixel] = [src for src in links.images if "/o/" in src]
    refused = [
        f"{TRACKING}/c/{key_id}.{altered}",
        f"{TRACKING}/c/{token[:-2]}",
        f"{TRACKING}/c/other.{body}",
        click_url(TRACKING, forger, TENANT, message, 0),  # a guessed secret
        click_url(TRACKING, keys, "another-tenant", message, 0),  # signed, no such message
        click_url(TRACKING, keys, TENANT, str(uuid.uuid4()), 0),  # signed, unknown message
        click_url(TRACKING, keys, TENANT, message, 2),  # signed, beyond its two links
        pixel.replace("/o/", "/c/").removesuffix(".gif"),  # an open's token as a click
        f"{TRACKING}/o/{token}.gif",  # a click's token as the pixel
    ]
    for url in refused:
        answer = await http.get(url, headers={"User-Agent": BROWSER}, follow_redirects=False)
        assert answer.status_code == 404, url
        assert "location" not in answer.headers
    assert await reactions_of(pool, message) == []
    assert await pool.fetchval("SELECT count(*) FROM reactions WHERE tenant_id ="
                               " 'another-tenant'") == 0


async def test_machine_opens_and_clicks_are_flagged_apart_from_the_persons(
    http: httpx.AsyncClient, pool: asyncpg.Pool,
) -> None:
    message, links, _ = await send_tracked_email(http, pool)
    await sent_long_ago(pool, message)
    [pixel] = [src for src in links.images if "/o/" in src]
    proxy = ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
             "(via ggpht.com GoogleImageProxy)")
    assert (await http.get(pixel, headers={"User-Agent": proxy})).status_code == 200
    assert (await http.get(pixel, headers={"User-Agent": BROWSER})).status_code == 200
    scanner = await http.head(links.hrefs[3], headers={"User-Agent": "Barracuda Sentinel"})
    assert scanner.status_code == 302
    assert scanner.headers["location"] == "https://shop.example/cart"
    rows = await reactions_of(pool, message)
    assert sorted((r["kind"], r["machine"], r["machineReason"]) for r in rows) == [
        ("clicked", True, "HEAD request (a link checker)"),
        ("opened", False, None),
        ("opened", True, "Gmail image proxy (GoogleImageProxy)"),
    ]


async def test_a_click_is_answered_and_recorded_with_kafka_unreachable(
    pool: asyncpg.Pool, http: httpx.AsyncClient,
) -> None:
    """The service's own wiring with a Kafka that never answers: the redirect waits for
    PostgreSQL only (the service holds no Kafka client; the reactions service relays)."""
    message, links, _ = await send_tracked_email(http, pool)
    await sent_long_ago(pool, message)
    no_kafka = settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:9"})
    app = create_app(no_kafka)
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                   base_url=TRACKING)
        async with client:
            began = time.monotonic()
            answer = await client.get(links.hrefs[3], headers={"User-Agent": BROWSER})
            elapsed = time.monotonic() - began
            assert answer.status_code == 302
            assert answer.headers["location"] == "https://shop.example/cart"
            assert elapsed < 1.0, elapsed
            assert not hasattr(app.state.tracking, "producer")
            [row] = await reactions_of(pool, message)
            assert (row["kind"], row["link"]["index"]) == ("clicked", 1)
