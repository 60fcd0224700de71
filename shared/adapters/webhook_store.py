"""Outbound webhooks in PostgreSQL (migration 019): subscriptions, the status-change
outbox, the durable delivery schedule and its log."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from shared.adapters import erasure

SECRET_PREFIX = "whsec_"
FILTERS = ("event_ids", "channels", "statuses", "kinds")
_SUBSCRIPTION = ("subscription_id, tenant_id, url, description, event_ids, channels,"
                 " statuses, kinds, enabled, created_at, updated_at,"
                 " previous_secret_until")


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


# --- subscriptions (the admin API) --------------------------------------------------------

async def create(db: asyncpg.Connection, tenant: str, fields: dict[str, Any]
                 ) -> tuple[dict[str, Any], str]:
    """The new subscription and its secret (shown once)."""
    secret = new_secret()
    row = await db.fetchrow(
        f"INSERT INTO webhook_subscriptions (subscription_id, tenant_id, url, description,"
        f" event_ids, channels, statuses, kinds, enabled, secret)"
        f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {_SUBSCRIPTION}",
        "wh_" + secrets.token_hex(8), tenant, fields["url"], fields["description"],
        *(fields[f] for f in FILTERS), fields["enabled"], secret)
    return dict(row), secret


async def list_all(db: asyncpg.Connection, tenant: str) -> list[dict[str, Any]]:
    rows = await db.fetch(f"SELECT {_SUBSCRIPTION} FROM webhook_subscriptions"
                          f" WHERE tenant_id = $1 ORDER BY created_at", tenant)
    return [dict(r) for r in rows]


async def get(db: asyncpg.Connection, tenant: str, subscription_id: str
              ) -> dict[str, Any] | None:
    row = await db.fetchrow(f"SELECT {_SUBSCRIPTION} FROM webhook_subscriptions"
                            f" WHERE tenant_id = $1 AND subscription_id = $2",
                            tenant, subscription_id)
    return None if row is None else dict(row)


async def update(db: asyncpg.Connection, tenant: str, subscription_id: str,
                 fields: dict[str, Any]) -> dict[str, Any] | None:
    """``fields``: the columns to change (a filter set to None means any)."""
    if not fields:
        return await get(db, tenant, subscription_id)
    names = list(fields)
    sets = ", ".join(f"{name} = ${i + 3}" for i, name in enumerate(names))
    row = await db.fetchrow(
        f"UPDATE webhook_subscriptions SET {sets}, updated_at = now()"
        f" WHERE tenant_id = $1 AND subscription_id = $2 RETURNING {_SUBSCRIPTION}",
        tenant, subscription_id, *(fields[n] for n in names))
    return None if row is None else dict(row)


async def delete(db: asyncpg.Connection, tenant: str, subscription_id: str) -> bool:
    """The subscription and its log go; what was scheduled for it is never sent."""
    return await db.fetchval(
        "DELETE FROM webhook_subscriptions WHERE tenant_id = $1 AND subscription_id = $2"
        " RETURNING true", tenant, subscription_id) is not None


async def rotate_secret(db: asyncpg.Connection, tenant: str, subscription_id: str,
                        overlap: timedelta) -> tuple[str, datetime | None] | None:
    """A new secret; the current one keeps signing beside it for ``overlap`` (none: it
    stops at once). Returns the new secret and until when the old one signs."""
    secret = new_secret()
    until = await db.fetchrow(
        "UPDATE webhook_subscriptions SET previous_secret = CASE WHEN $4 > interval '0'"
        " THEN secret END, previous_secret_until = CASE WHEN $4 > interval '0'"
        " THEN now() + $4 END, secret = $3, updated_at = now()"
        " WHERE tenant_id = $1 AND subscription_id = $2 RETURNING previous_secret_until",
        tenant, subscription_id, secret, overlap)
    return None if until is None else (secret, until["previous_secret_until"])


# --- the subscriptions the service matches against ------------------------------------------

async def subscriptions_of(db: asyncpg.Pool | asyncpg.Connection, tenant: str
                           ) -> list[dict[str, Any]]:
    """A tenant's enabled subscriptions, with what filters them."""
    rows = await db.fetch(
        "SELECT subscription_id, event_ids, channels, statuses, kinds"
        " FROM webhook_subscriptions WHERE tenant_id = $1 AND enabled", tenant)
    return [dict(r) for r in rows]


async def channels_of(db: asyncpg.Pool | asyncpg.Connection, tenant: str,
                      event_ids: Sequence[str]) -> dict[str, str]:
    rows = await db.fetch(
        "SELECT event_id, definition->>'channel' AS channel FROM event_configs"
        " WHERE tenant_id = $1 AND event_id = ANY($2::text[])", tenant, list(event_ids))
    return {r["event_id"]: r["channel"] for r in rows}


# --- the schedule -----------------------------------------------------------------------------

@dataclass(frozen=True)
class NewDelivery:
    delivery_id: str
    subscription_id: str
    tenant: str
    notification_id: str
    type: str
    body: bytes
    profile_id: str | None = None  # a reaction's: erased with the profile


async def schedule(db: asyncpg.Connection, deliveries: Sequence[NewDelivery]) -> int:
    """Due now; a delivery already scheduled (the same change read again) is left as it
    is. Returns how many are new."""
    if not deliveries:
        return 0
    result = await db.execute(
        "INSERT INTO webhook_deliveries (delivery_id, subscription_id, tenant_id,"
        " notification_id, type, body, profile_id, next_attempt_at)"
        " SELECT d, s, t, n, ty, b, p, now() FROM unnest($1::uuid[], $2::text[], $3::text[],"
        " $4::uuid[], $5::text[], $6::text[], $7::text[]) AS u(d, s, t, n, ty, b, p)"
        " ON CONFLICT (delivery_id) DO NOTHING",
        [d.delivery_id for d in deliveries], [d.subscription_id for d in deliveries],
        [d.tenant for d in deliveries], [d.notification_id for d in deliveries],
        [d.type for d in deliveries], [d.body.decode() for d in deliveries],
        [d.profile_id for d in deliveries])
    return int(result.split()[-1])


async def take_status_changes(db: asyncpg.Connection, limit: int) -> list[dict[str, Any]]:
    """The oldest status changes of the outbox, deleted: call it in the transaction that
    schedules their deliveries (several services share the outbox with SKIP LOCKED)."""
    rows = await db.fetch(
        "DELETE FROM webhook_status_outbox WHERE id IN (SELECT id FROM webhook_status_outbox"
        " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)"
        " RETURNING id, tenant_id, pkey, event_id, status, reason, message_id, at", limit)
    return sorted((dict(r) for r in rows), key=lambda r: r["id"])


@dataclass(frozen=True)
class Due:
    delivery_id: uuid.UUID
    subscription_id: str
    notification_id: uuid.UUID
    body: bytes
    attempt: int  # the one about to be made, 1-based
    give_up_after: datetime
    url: str
    secrets: tuple[str, ...]  # the current one first


async def claim_due(db: asyncpg.Connection, limit: int, per_subscription: int,
                    busy: Sequence[str], lease_s: float) -> list[Due]:
    """Due deliveries, at most ``per_subscription`` of each enabled subscription that is
    not ``busy`` and ``limit`` in all, oldest first, leased for ``lease_s`` (pushed back by
    that much, so a crash mid-call retries them then; several workers share the schedule
    with SKIP LOCKED). A slow endpoint's backlog therefore never fills a claim."""
    rows = await db.fetch(
        "WITH due AS (SELECT d.delivery_id FROM webhook_subscriptions s, LATERAL ("
        "   SELECT delivery_id FROM webhook_deliveries d"
        "    WHERE d.subscription_id = s.subscription_id AND d.state = 'pending'"
        "      AND d.next_attempt_at <= now()"
        "    ORDER BY d.next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) d"
        "  WHERE s.enabled AND NOT s.subscription_id = ANY($3::text[]) LIMIT $1)"
        " UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $4)"
        " FROM due, webhook_subscriptions s"
        " WHERE d.delivery_id = due.delivery_id AND s.subscription_id = d.subscription_id"
        " RETURNING d.delivery_id, d.subscription_id, d.notification_id, d.body, d.attempts,"
        " d.give_up_after, d.next_attempt_at, s.url, s.secret,"
        " CASE WHEN s.previous_secret_until > now() THEN s.previous_secret END AS previous",
        limit, per_subscription, list(busy), lease_s)
    return [Due(r["delivery_id"], r["subscription_id"], r["notification_id"],
                r["body"].encode(), r["attempts"] + 1, r["give_up_after"], r["url"],
                tuple(s for s in (r["secret"], r["previous"]) if s))
            for r in sorted(rows, key=lambda r: r["next_attempt_at"])]


async def release(db: asyncpg.Connection, delivery_ids: Sequence[uuid.UUID]) -> None:
    """Claimed but not called (no room left for their endpoint): due again at once."""
    if delivery_ids:
        await db.execute("UPDATE webhook_deliveries SET next_attempt_at = now()"
                         " WHERE delivery_id = ANY($1::uuid[]) AND state = 'pending'",
                         list(delivery_ids))


@dataclass(frozen=True)
class Attempt:
    delivery_id: uuid.UUID
    attempt: int
    at: datetime
    http_status: int | None
    latency_ms: int
    error: str | None
    delivered: bool
    next_attempt_at: datetime | None  # None and not delivered: given up


async def record(db: asyncpg.Connection, attempts: Sequence[Attempt]) -> None:
    """Each attempt in the log, and its delivery's state: delivered, due again, or given
    up (failed)."""
    if not attempts:
        return
    try:
        await _record(db, attempts)
    except asyncpg.ForeignKeyViolationError:
        pass  # its subscription was deleted meanwhile, and the delivery with it


async def _record(db: asyncpg.Connection, attempts: Sequence[Attempt]) -> None:
    async with db.transaction():
        await db.executemany(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at, http_status, latency_ms,"
            " error, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT DO NOTHING",
            [(a.delivery_id, a.attempt, a.at, a.http_status, a.latency_ms, a.error,
              a.next_attempt_at) for a in attempts])
        await db.executemany(
            "UPDATE webhook_deliveries SET attempts = $2, last_http_status = $3,"
            " last_error = $4, last_latency_ms = $5,"
            " state = CASE WHEN $6::boolean THEN 'delivered'"
            "  WHEN $7::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,"
            " delivered_at = CASE WHEN $6::boolean THEN $8::timestamptz END,"
            " next_attempt_at = $7::timestamptz"
            " WHERE delivery_id = $1 AND state = 'pending'",
            [(a.delivery_id, a.attempt, a.http_status, a.error, a.latency_ms, a.delivered,
              a.next_attempt_at, a.at) for a in attempts])


async def prune(db: asyncpg.Connection, keep: timedelta, limit: int = 10_000) -> int:
    """Deliveries done (delivered or given up) before ``keep`` ago, with their attempts."""
    result = await db.execute(
        "DELETE FROM webhook_deliveries WHERE delivery_id IN (SELECT delivery_id FROM"
        " webhook_deliveries WHERE state <> 'pending' AND created_at < now() - $1::interval"
        " LIMIT $2)", keep, limit)
    return int(result.split()[-1])


# --- the log (the admin API) -----------------------------------------------------------------

async def deliveries(db: asyncpg.Connection, tenant: str, subscription_id: str, limit: int,
                     state: str | None, delivery_id: uuid.UUID | None = None
                     ) -> list[dict[str, Any]]:
    """Newest first (or the one ``delivery_id``), each with its attempts in order."""
    rows = await db.fetch(
        "SELECT d.delivery_id, d.notification_id, d.type, d.state, d.attempts, d.created_at,"
        " d.next_attempt_at, d.give_up_after, d.delivered_at, d.last_http_status,"
        " d.last_error, d.last_latency_ms, coalesce(jsonb_agg(jsonb_build_object("
        "  'attempt', a.attempt, 'at', a.at, 'httpStatus', a.http_status,"
        "  'latencyMs', a.latency_ms, 'error', a.error, 'nextAttemptAt', a.next_attempt_at)"
        "  ORDER BY a.attempt) FILTER (WHERE a.attempt IS NOT NULL), '[]'::jsonb) AS log"
        " FROM webhook_deliveries d LEFT JOIN webhook_attempts a USING (delivery_id)"
        " WHERE d.tenant_id = $1 AND d.subscription_id = $2"
        "   AND ($4::text IS NULL OR d.state = $4)"
        "   AND ($5::uuid IS NULL OR d.delivery_id = $5)"
        " GROUP BY d.delivery_id ORDER BY d.created_at DESC, d.delivery_id LIMIT $3",
        tenant, subscription_id, limit, state, delivery_id)
    return [dict(r) for r in rows]


async def body_of(db: asyncpg.Connection, tenant: str, subscription_id: str,
                  delivery_id: uuid.UUID) -> str | None:
    return await db.fetchval(
        "SELECT body FROM webhook_deliveries WHERE tenant_id = $1 AND subscription_id = $2"
        " AND delivery_id = $3", tenant, subscription_id, delivery_id)


async def redeliver(db: asyncpg.Connection, tenant: str, subscription_id: str,
                    delivery_id: uuid.UUID) -> bool:
    """Due now again, whatever its state, and retried for another day if it fails."""
    return await db.fetchval(
        "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = now(),"
        " give_up_after = now() + interval '1 day', delivered_at = NULL"
        " WHERE tenant_id = $1 AND subscription_id = $2 AND delivery_id = $3 RETURNING true",
        tenant, subscription_id, delivery_id) is not None


# --- erasure -----------------------------------------------------------------------------------

async def _erase(db: asyncpg.Connection, tenant: str, profile_id: str) -> dict[str, int]:
    """Notifications about the profile's reactions leave the log (and are not sent, if they
    were still due): what was delivered is the receiver's to erase."""
    status = await db.execute("DELETE FROM webhook_deliveries WHERE tenant_id = $1"
                              " AND profile_id = $2", tenant, profile_id)
    return {"webhookDeliveries": int(status.split()[-1])}


async def _export(db: asyncpg.Connection, tenant: str, profile_id: str) -> dict[str, object]:
    rows = await db.fetch(
        "SELECT subscription_id, type, state, created_at, delivered_at FROM"
        " webhook_deliveries WHERE tenant_id = $1 AND profile_id = $2 ORDER BY created_at",
        tenant, profile_id)
    return {"webhookDeliveries": [
        {"subscriptionId": r["subscription_id"], "type": r["type"], "state": r["state"],
         "createdAt": r["created_at"].isoformat(),
         "deliveredAt": r["delivered_at"] and r["delivered_at"].isoformat()} for r in rows]}


erasure.register(erasure.PersonalData("webhookDeliveries", _erase, _export))
