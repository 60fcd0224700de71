"""Outbound webhooks: a tenant's endpoints, subscribed to status changes and reactions,
their signing secrets (shown once; rotation with an overlap), a test ping, the delivery
log and a manual redelivery. services/webhooks makes the calls."""

from __future__ import annotations

import secrets as random_tokens
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.admin.dependencies import AdminCaller, Db
from shared.adapters import webhook_store as store
from shared.domain import outbound_webhooks as wh
from shared.domain import webhook_payloads as payloads
from shared.domain.events import Channel
from shared.domain.reactions import ReactionKind
from shared.domain.status import Status

router = APIRouter(prefix="/admin/v1", tags=["webhooks"])
MAX_PER_TENANT = 100
EventId = Annotated[str, Field(min_length=1, max_length=64)]


class _Filters(BaseModel):
    eventIds: Annotated[list[EventId], Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="only these events' changes and reactions; omitted or"
                                  " null: any event (a journey's reactions have none)")
    channels: Annotated[list[Channel], Field(min_length=1)] | None = Field(
        default=None, description="only these channels; omitted or null: any")
    statuses: list[Status] | None = Field(
        default=None, description="status changes to these statuses; null: every status"
                                  " change; []: none (reactions only)")
    kinds: list[ReactionKind] | None = Field(
        default=None, description="reactions of these kinds; null: every reaction;"
                                  " []: none (status changes only)")


class WebhookIn(_Filters):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[str, Field(min_length=1, max_length=2000)] = Field(
        description="https:// endpoint that receives a POST per notification")
    description: Annotated[str, Field(max_length=200)] = ""
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        problem = wh.url_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class WebhookPatch(_Filters):
    """Only the fields given change (a filter given as null: any)."""

    model_config = ConfigDict(extra="forbid")
    url: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    description: Annotated[str, Field(max_length=200)] | None = None
    enabled: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        problem = value and wh.url_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class WebhookOut(_Filters):
    subscriptionId: str
    url: str
    description: str
    enabled: bool
    createdAt: datetime
    updatedAt: datetime
    previousSecretUntil: datetime | None = Field(
        description="after a rotation, the previous secret signs too (a second v1) until"
                    " then")

    @classmethod
    def of(cls, row: dict[str, Any]) -> WebhookOut:
        return cls(subscriptionId=row["subscription_id"], url=row["url"],
                   description=row["description"], eventIds=row["event_ids"],
                   channels=row["channels"], statuses=row["statuses"], kinds=row["kinds"],
                   enabled=row["enabled"], createdAt=row["created_at"],
                   updatedAt=row["updated_at"],
                   previousSecretUntil=_live(row["previous_secret_until"]))


class WebhookCreated(WebhookOut):
    secret: str = Field(description="whsec_…: the signing secret, shown this once")


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keepPreviousHours: float = Field(default=24, ge=0, le=168, description=(
        "the current secret keeps signing beside the new one this long (0: it stops now)"))


class RotateOut(BaseModel):
    secret: str = Field(description="the new signing secret, shown this once")
    previousSecretUntil: datetime | None


class Queued(BaseModel):
    deliveryId: str
    notificationId: str


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    httpStatus: int | None
    latencyMs: int
    error: str | None
    nextAttemptAt: datetime | None = Field(description="null: none (delivered or given up)")


class DeliveryOut(BaseModel):
    deliveryId: str
    notificationId: str
    type: str
    state: Literal["pending", "delivered", "failed"] = Field(
        description="pending (due at nextAttemptAt), delivered (2xx), failed (given up a"
                    " day after it was made)")
    attempts: int
    createdAt: datetime
    nextAttemptAt: datetime | None
    giveUpAfter: datetime
    deliveredAt: datetime | None
    lastHttpStatus: int | None
    lastError: str | None
    lastLatencyMs: int | None
    log: list[AttemptOut]
    body: dict[str, Any] | None = Field(default=None, description="what is sent (one"
                                                                  " delivery's GET only)")

    @classmethod
    def of(cls, row: dict[str, Any]) -> DeliveryOut:
        pending = row["state"] == "pending"
        return cls(deliveryId=str(row["delivery_id"]),
                   notificationId=str(row["notification_id"]), type=row["type"],
                   state=row["state"], attempts=row["attempts"], createdAt=row["created_at"],
                   nextAttemptAt=row["next_attempt_at"] if pending else None,
                   giveUpAfter=row["give_up_after"], deliveredAt=row["delivered_at"],
                   lastHttpStatus=row["last_http_status"], lastError=row["last_error"],
                   lastLatencyMs=row["last_latency_ms"],
                   log=[AttemptOut.model_validate(a) for a in row["log"]])


def _live(until: datetime | None) -> datetime | None:
    return until if until is not None and until > datetime.now(UTC) else None


def _columns(body: _Filters, given: set[str]) -> dict[str, Any]:
    names = {"eventIds": "event_ids", "channels": "channels", "statuses": "statuses",
             "kinds": "kinds", "url": "url", "description": "description",
             "enabled": "enabled"}
    columns = {}
    for field, column in names.items():
        if field in given:
            value = getattr(body, field)
            if isinstance(value, list):
                value = sorted({str(v) for v in value})
            columns[column] = value
    return columns


def _matches_nothing(statuses: object, kinds: object) -> bool:
    return statuses == [] and kinds == []


NOTHING = "statuses and kinds are both empty: the subscription would receive nothing"


async def _found(db: Db, tenant: str, subscription_id: str) -> dict[str, Any]:
    row = await store.get(db, tenant, subscription_id)
    if row is None:
        raise HTTPException(404, f"no webhook {subscription_id!r}")
    return row


@router.post("/webhooks", status_code=201, response_model=WebhookCreated)
async def create_webhook(body: WebhookIn, caller: AdminCaller, db: Db) -> WebhookCreated:
    """A new subscription; its signing secret is in this answer only."""
    if _matches_nothing(body.statuses, body.kinds):
        raise HTTPException(422, NOTHING)
    if len(await store.list_all(db, caller.tenant)) >= MAX_PER_TENANT:
        raise HTTPException(409, f"a tenant has at most {MAX_PER_TENANT} webhooks")
    columns = _columns(body, set(WebhookIn.model_fields))
    row, secret = await store.create(db, caller.tenant, columns)
    return WebhookCreated(**WebhookOut.of(row).model_dump(), secret=secret)


@router.get("/webhooks", response_model=list[WebhookOut])
async def list_webhooks(caller: AdminCaller, db: Db) -> list[WebhookOut]:
    return [WebhookOut.of(r) for r in await store.list_all(db, caller.tenant)]


@router.get("/webhooks/{subscription_id}", response_model=WebhookOut)
async def get_webhook(subscription_id: str, caller: AdminCaller, db: Db) -> WebhookOut:
    return WebhookOut.of(await _found(db, caller.tenant, subscription_id))


@router.patch("/webhooks/{subscription_id}", response_model=WebhookOut)
async def update_webhook(subscription_id: str, body: WebhookPatch, caller: AdminCaller,
                         db: Db) -> WebhookOut:
    """Takes effect for what happens from the commit on (the service is told at once);
    disabled, nothing is scheduled and what is due waits (its day still runs)."""
    current = await _found(db, caller.tenant, subscription_id)
    for field in ("url", "description", "enabled"):
        if field in body.model_fields_set and getattr(body, field) is None:
            raise HTTPException(422, f"{field} cannot be null")
    columns = _columns(body, body.model_fields_set)
    if _matches_nothing(columns.get("statuses", current["statuses"]),
                        columns.get("kinds", current["kinds"])):
        raise HTTPException(422, NOTHING)
    row = await store.update(db, caller.tenant, subscription_id, columns)
    assert row is not None
    return WebhookOut.of(row)


@router.delete("/webhooks/{subscription_id}", status_code=204)
async def delete_webhook(subscription_id: str, caller: AdminCaller, db: Db) -> None:
    """The subscription and its delivery log; nothing more is sent to it."""
    if not await store.delete(db, caller.tenant, subscription_id):
        raise HTTPException(404, f"no webhook {subscription_id!r}")


@router.post("/webhooks/{subscription_id}/rotate-secret", response_model=RotateOut)
async def rotate_secret(subscription_id: str, caller: AdminCaller, db: Db,
                        body: RotateIn | None = None) -> RotateOut:
    """A new secret signs from now on; the current one keeps signing beside it (a second
    ``v1`` in the header) for ``keepPreviousHours``, so receivers can switch over."""
    hours = (body or RotateIn()).keepPreviousHours
    rotated = await store.rotate_secret(db, caller.tenant, subscription_id,
                                        timedelta(hours=hours))
    if rotated is None:
        raise HTTPException(404, f"no webhook {subscription_id!r}")
    return RotateOut(secret=rotated[0], previousSecretUntil=rotated[1])


@router.post("/webhooks/{subscription_id}/ping", status_code=202, response_model=Queued)
async def ping(subscription_id: str, caller: AdminCaller, db: Db) -> Queued:
    """A ``ping`` notification, sent like any other (signed, retried, logged): follow it
    in the delivery log."""
    await _found(db, caller.tenant, subscription_id)
    notification = payloads.ping(caller.tenant, subscription_id,
                                 random_tokens.token_hex(8), datetime.now(UTC))
    delivery = wh.delivery_id(subscription_id, notification.id)
    await store.schedule(db, [store.NewDelivery(
        delivery, subscription_id, caller.tenant, notification.id, notification.type,
        payloads.body(notification))])
    return Queued(deliveryId=delivery, notificationId=notification.id)


@router.get("/webhooks/{subscription_id}/deliveries", response_model=list[DeliveryOut])
async def deliveries(subscription_id: str, caller: AdminCaller, db: Db,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50,
                     state: Literal["pending", "delivered", "failed"] | None = None,
                     ) -> list[DeliveryOut]:
    """Newest first (kept 7 days once done), each with its attempts: when, HTTP status,
    latency, error, and when the next one is due."""
    await _found(db, caller.tenant, subscription_id)
    rows = await store.deliveries(db, caller.tenant, subscription_id, limit, state)
    return [DeliveryOut.of(r) for r in rows]


def _delivery_uuid(delivery_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(delivery_id)
    except ValueError:
        raise HTTPException(404, f"no delivery {delivery_id!r}") from None


@router.get("/webhooks/{subscription_id}/deliveries/{delivery_id}",
            response_model=DeliveryOut)
async def delivery(subscription_id: str, delivery_id: str, caller: AdminCaller, db: Db
                   ) -> DeliveryOut:
    """One delivery, with the body it sends."""
    found = _delivery_uuid(delivery_id)
    rows = await store.deliveries(db, caller.tenant, subscription_id, 1, None, found)
    if not rows:
        raise HTTPException(404, f"no delivery {delivery_id!r}")
    out = DeliveryOut.of(rows[0])
    body = await store.body_of(db, caller.tenant, subscription_id, found)
    return out.model_copy(update={"body": orjson.loads(body) if body else None})


@router.post("/webhooks/{subscription_id}/deliveries/{delivery_id}/redeliver",
             status_code=202, response_model=Queued)
async def redeliver(subscription_id: str, delivery_id: str, caller: AdminCaller, db: Db
                    ) -> Queued:
    """Sent again now, whatever its state (the same notification id: a receiver that
    already has it can tell), and retried for another day if it fails."""
    found = _delivery_uuid(delivery_id)
    rows = await store.deliveries(db, caller.tenant, subscription_id, 1, None, found)
    if not rows or not await store.redeliver(db, caller.tenant, subscription_id, found):
        raise HTTPException(404, f"no delivery {delivery_id!r}")
    return Queued(deliveryId=delivery_id, notificationId=str(rows[0]["notification_id"]))
