"""Who the admin key is: the console exchanges a key for a session with this call, and
shows the tenant's name on every page.

    GET /admin/v1/me   {"tenant": "acme", "tenantName": "ACME Corp", "keyId": "…",
                        "scope": "admin", "label": "back office"}
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from services.admin.dependencies import AdminCaller, Db

router = APIRouter(prefix="/admin/v1/me", tags=["operations"])


class MeOut(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
    tenant: str
    tenant_name: str
    key_id: str
    scope: str
    label: str


@router.get("", response_model=MeOut, response_model_by_alias=True)
async def me(caller: AdminCaller, db: Db) -> MeOut:
    row = await db.fetchrow(
        "SELECT t.name, k.label FROM api_keys k JOIN tenants t USING (tenant_id)"
        " WHERE k.key_id = $1 AND k.tenant_id = $2", caller.key_id, caller.tenant)
    return MeOut(tenant=caller.tenant, tenant_name=row["name"] if row else caller.tenant,
                 key_id=caller.key_id, scope=caller.scope.value,
                 label=(row["label"] or "") if row else "")
