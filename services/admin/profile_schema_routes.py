"""The tenant's profile schema through the admin API: the custom attributes its profiles
carry (name and type; the built-in fields need no declaration) and the topics they can
subscribe to. Profile writes are checked against it (the gateway's profile API)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import Field

from services.admin.dependencies import AdminCaller, Db
from shared.adapters import profile_schema_store as store
from shared.domain.profile_schema import BUILT_INS, ProfileSchema

router = APIRouter(prefix="/admin/v1/profile-schema", tags=["profile schema"])


class ProfileSchemaOut(ProfileSchema):
    built_ins: tuple[str, ...] = Field(default=tuple(BUILT_INS),
                                       description="the fields every profile has")
    version: int = Field(description="0 until a schema is declared; then 1, 2…")
    updated_at: datetime | None = None


def _out(stored: store.StoredSchema) -> ProfileSchemaOut:
    return ProfileSchemaOut(attributes=stored.schema.attributes, topics=stored.schema.topics,
                            version=stored.version, updated_at=stored.updated_at)


@router.get("", response_model=ProfileSchemaOut, response_model_by_alias=True)
async def get_profile_schema(caller: AdminCaller, db: Db) -> ProfileSchemaOut:
    return _out(await store.load_schema(db, caller.tenant))


@router.put("", response_model=ProfileSchemaOut, response_model_by_alias=True)
async def put_profile_schema(schema: ProfileSchema, caller: AdminCaller, db: Db
                             ) -> ProfileSchemaOut:
    """Replace the schema. Values of an attribute removed or retyped stay on the profiles
    that have them, and are shown as stored; new writes follow the new schema (within a
    moment: the gateway is told at commit)."""
    return _out(await store.save_schema(db, caller.tenant, schema))
