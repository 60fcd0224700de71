"""DKIM keys of a tenant's sending domains. A key is made here (RSA 2048) and its private
half stored encrypted (PARCOURS_DKIM_MASTER_KEY); the answer gives the TXT record to
publish. Rotation: add a key under a new selector, publish its record, activate it (the
domain's previous key stops signing at once), delete the old one once mail signed with it
has been delivered. The senders sign with the active key of a message's From domain.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.admin.dependencies import AdminCaller, Db
from shared.adapters import dkim
from shared.adapters import sender_identity_store as store
from shared.domain import sender_identity as names
from shared.settings import Settings

router = APIRouter(prefix="/admin/v1", tags=["DKIM keys"])
Name = Annotated[str, Field(min_length=1, max_length=253)]


class DkimKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    domain: Name = Field(description="the sending domain: the From addresses' domain")
    selector: Name = Field(description="e.g. s2026a: the record lives at "
                                       "<selector>._domainkey.<domain>")

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        return names.domain(value)

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        return names.selector(value)


class DkimKeyOut(BaseModel):
    domain: str
    selector: str
    active: bool = Field(description="the key that signs the domain's email")
    dnsName: str = Field(description="where to publish the TXT record")
    dnsRecord: str = Field(description="the TXT record: v=DKIM1; k=rsa; p=…")
    createdAt: datetime
    activatedAt: datetime | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> DkimKeyOut:
        return cls(domain=row["domain"], selector=row["selector"], active=row["active"],
                   dnsName=dkim.dns_name(row["selector"], row["domain"]),
                   dnsRecord=dkim.dns_record(row["public_key"]), createdAt=row["created_at"],
                   activatedAt=row["activated_at"])


def _vault(request: Request) -> dkim.Vault:
    settings: Settings = request.app.state.settings
    master = settings.dkim_master_key and settings.dkim_master_key.get_secret_value()
    try:
        vault = dkim.Vault(master or None)
    except ValueError as error:
        raise HTTPException(409, str(error)) from None
    if not vault.ready:
        raise HTTPException(409, "PARCOURS_DKIM_MASTER_KEY is not set on the admin API: DKIM "
                                 "keys cannot be stored (they are kept encrypted with it)")
    return vault


def _key(domain_: str, selector_: str) -> tuple[str, str]:
    """The path's domain and selector as stored; 404 for what cannot be one."""
    try:
        return names.domain(domain_), names.selector(selector_)
    except ValueError:
        raise HTTPException(404, f"no DKIM key {selector_!r} for {domain_!r}") from None


@router.post("/dkim-keys", status_code=201, response_model=DkimKeyOut)
async def create_key(body: DkimKeyIn, caller: AdminCaller, db: Db, request: Request
                     ) -> DkimKeyOut:
    """A new key, inactive: publish its record, then activate it."""
    vault = _vault(request)
    pair = await asyncio.to_thread(dkim.generate_key)  # ~0.1 s of CPU: off the loop
    row = await store.add_key(db, caller.tenant, body.domain, body.selector,
                              vault.seal(pair.private_pem), pair.public_b64)
    if row is None:
        raise HTTPException(409, f"{body.domain} already has a key {body.selector!r}: choose"
                                 " another selector (a published record must not change under"
                                 " its name)")
    return DkimKeyOut.of(row)


@router.get("/dkim-keys", response_model=list[DkimKeyOut])
async def list_keys(caller: AdminCaller, db: Db, domain: str | None = None
                    ) -> list[DkimKeyOut]:
    try:
        folded = None if domain is None else names.domain(domain)
    except ValueError as error:
        raise RequestValidationError([{"type": "value_error", "loc": ["query", "domain"],
                                       "msg": str(error)}]) from None
    return [DkimKeyOut.of(r) for r in await store.list_keys(db, caller.tenant, folded)]


@router.post("/dkim-keys/{domain_}/{selector_}/activate", response_model=DkimKeyOut)
async def activate_key(domain_: str, selector_: str, caller: AdminCaller, db: Db
                       ) -> DkimKeyOut:
    """This key signs the domain's email from the next message on; the domain's other keys
    stay, inactive. Publish its DNS record first: until receivers see it, they fail it."""
    row = await store.activate_key(db, caller.tenant, *_key(domain_, selector_))
    if row is None:
        raise HTTPException(404, f"no DKIM key {selector_!r} for {domain_!r}")
    return DkimKeyOut.of(row)


@router.delete("/dkim-keys/{domain_}/{selector_}", status_code=204)
async def delete_key(domain_: str, selector_: str, caller: AdminCaller, db: Db) -> Response:
    """Deleting the active key stops signing the domain's email."""
    if not await store.delete_key(db, caller.tenant, *_key(domain_, selector_)):
        raise HTTPException(404, f"no DKIM key {selector_!r} for {domain_!r}")
    return Response(status_code=204)
