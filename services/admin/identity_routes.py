"""A tenant's sender identity: the From address and name of its email, its Reply-To, and
the domain its bounces return to (the envelope sender is a VERP return path there, naming
the message). Without one, the settings' mail_from and bounce_domain apply."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from services.admin.dependencies import AdminCaller, Db
from shared.adapters import sender_identity_store as store
from shared.domain.sender_identity import SenderIdentity, default_identity
from shared.settings import Settings

router = APIRouter(prefix="/admin/v1", tags=["sender identity"])


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(_settings)]


class SenderIdentityOut(SenderIdentity):
    isDefault: bool = Field(description="true: the tenant set none, the settings' apply")


@router.get("/sender-identity", response_model=SenderIdentityOut)
async def get_identity(caller: AdminCaller, db: Db, settings: AppSettings
                       ) -> SenderIdentityOut:
    identity = await store.load_identity(db, caller.tenant)
    fallback = default_identity(settings.mail_from, settings.bounce_domain)
    return SenderIdentityOut(**(identity or fallback).model_dump(), isDefault=identity is None)



@router.put("/sender-identity", response_model=SenderIdentityOut)
async def put_identity(body: SenderIdentity, caller: AdminCaller, db: Db
                       ) -> SenderIdentityOut:
    """Applies to the next messages the senders hand over (they drop their cached copy
    when this commits). DKIM signs with the active key of fromAddress's domain, if any."""
    await store.save_identity(db, caller.tenant, body)
    return SenderIdentityOut(**body.model_dump(), isDefault=False)
