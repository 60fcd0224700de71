"""The one statement a pixel or a click is recorded by (``tracking_store.record_hits``),
on PostgreSQL: the record it builds from the tracked message is the ``Reaction`` the
domain makes of it (every field, for opens and clicks, persons and machines — by the user
agent or by the sending's timing —, event and journey origins, profile or address), and
its trace row's reason is ``reason_of``'s; a message or a link not stored is unknown, a
message sent longer ago than kept expired, and neither records anything; a repeat, or the
same reaction twice in one batch, is not new."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from services.tracking.reaction_rows import SCANNER_WINDOW, hit_of
from shared.adapters import tracking_store
from shared.adapters.postgres import connect
from shared.domain.machine_signals import classify
from shared.domain.reactions import Link, Reaction, ReactionKind, reaction_id, reason_of
from shared.domain.routing import EventOrigin, JourneyOrigin
from shared.domain.tracking_links import Tracked
from tests.integration.conftest import settings

EVENT = EventOrigin(eventId="EVTcart", pKey="k1").model_dump(mode="json")
JOURNEY = JourneyOrigin(journeyId="JRN1", journeyVersion=2, nodeId="n1",
                        instanceId="i-1").model_dump(mode="json")
LINKS = ["https://a.example/x?é=1&b=2", "https://b.example/" + "p" * 600]
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"
AT = datetime(2026, 12, 5, 12, 0, 1, 250, tzinfo=UTC)


async def _store(pool: asyncpg.Pool, tenant: str, who: tuple[str | None, str | None],
                 origin: dict[str, object], sent_at: datetime) -> str:
    message = str(uuid.uuid4())
    await pool.execute(
        "INSERT INTO tracked_messages (tenant_id, message_id, channel, profile_id, address,"
        " origin, links, sent_at) VALUES ($1, $2, 'email', $3, $4, $5, $6, $7)",
        tenant, uuid.UUID(message), who[0], who[1], origin, LINKS, sent_at)
    return message


async def _clean(pool: asyncpg.Pool, tenant: str) -> None:
    for table in ("reaction_outbox", "message_trace", "reactions", "tracked_messages"):
        await pool.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant)


async def test_the_record_built_in_the_statement_is_the_domains_reaction(
    pool: asyncpg.Pool,
):
    tenant = f"hits-{uuid.uuid4().hex[:8]}"
    cases = list(itertools.product(
        (EVENT, JOURNEY), (("p-1", None), (None, "ada@example.com")), (None, 0, 1),
        (BROWSER, "GoogleImageProxy/1.0", None), ("GET", "HEAD"),
        (timedelta(hours=1), timedelta(seconds=0.5))))
    hits, expected = [], []
    try:
        for origin, who, index, agent, method, ago in cases:
            message = await _store(pool, tenant, who, origin, AT - ago)
            kind = ReactionKind.OPENED if index is None else ReactionKind.CLICKED
            hits.append(hit_of(Tracked("open" if index is None else "click", tenant, message,
                                       index), method, agent, AT))
            verdict = classify(method, agent, ago.total_seconds())
            expected.append(Reaction(
                reactionId=reaction_id(tenant, message, kind, link=index,
                                       machine=verdict.machine),
                tenant=tenant, messageId=message, kind=kind, at=AT, channel="email",
                profileId=who[0], address=who[1], origin=origin,
                link=None if index is None else Link(index=index, url=LINKS[index]),
                machine=verdict.machine, machineReason=verdict.reason, source="tracking"))
        connection = await connect(settings.pg_dsn)
        try:
            answers = await tracking_store.record_hits(connection, hits, None, SCANNER_WINDOW)
        finally:
            await connection.close()
        assert len({r.machine for r in expected}) == 2  # both kinds of verdict were made
        for answer, reaction in zip(answers, expected, strict=True):
            assert (answer.refused, answer.new, answer.reaction_id) == (
                None, True, reaction.reactionId)
            assert answer.url == (reaction.link and reaction.link.url)
            row = await pool.fetchrow(
                "SELECT r.record::text, r.message_id::text, r.kind, r.at, r.profile_id,"
                "       t.reason"
                "  FROM reactions r JOIN message_trace t ON t.tenant_id = r.tenant_id"
                "   AND t.message_id = r.message_id AND t.stage = 'reaction'"
                " WHERE r.tenant_id = $1 AND r.reaction_id = $2",
                tenant, uuid.UUID(reaction.reactionId))
            assert Reaction.model_validate_json(row["record"]) == reaction
            assert (row["message_id"], row["kind"], row["at"], row["profile_id"]) == (
                reaction.messageId, reaction.kind.value, reaction.at, reaction.profileId)
            assert row["reason"] == reason_of(reaction)  # as for any other reaction
    finally:
        await _clean(pool, tenant)


async def test_unknown_expired_and_repeated_hits_record_nothing_more(pool: asyncpg.Pool):
    tenant = f"hits-{uuid.uuid4().hex[:8]}"
    try:
        fresh = await _store(pool, tenant, ("p-1", None), EVENT, AT - timedelta(hours=1))
        old = await _store(pool, tenant, ("p-1", None), EVENT, AT - timedelta(days=2))

        def click(message: str, index: int) -> tracking_store.Hit:
            return hit_of(Tracked("click", tenant, message, index), "GET", BROWSER, AT)

        connection = await connect(settings.pg_dsn)
        try:
            async def record(*hits: tracking_store.Hit) -> list[tracking_store.Recorded]:
                return await tracking_store.record_hits(connection, hits, timedelta(days=1),
                                                        SCANNER_WINDOW)

            first = await record(click(str(uuid.uuid4()), 0), click(fresh, 2), click(old, 0),
                                 click(fresh, 0), click(fresh, 0))
            again = await record(click(fresh, 0))
            assert await record() == []
        finally:
            await connection.close()
        assert [a.refused for a in first] == ["unknown", "unknown", "expired", None, None]
        assert [a.new for a in first[3:]] == [True, False]  # the batch's second is a repeat
        assert (again[0].new, again[0].url, again[0].reaction_id) == (
            False, LINKS[0], first[3].reaction_id)
        counts = await pool.fetchrow(
            "SELECT (SELECT count(*) FROM reactions WHERE tenant_id = $1) AS reactions,"
            "       (SELECT count(*) FROM message_trace WHERE tenant_id = $1) AS traced",
            tenant)
        assert dict(counts) == {"reactions": 1, "traced": 1}
    finally:
        await _clean(pool, tenant)
