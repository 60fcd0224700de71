"""A profile as the APIs show it (the profile API, services/gateway/profile_routes.py, and
the admin API's profile search, services/admin/profile_routes.py): one function, so both
answer the same document."""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.adapters import consent_store
from shared.domain.consent import consent_view
from shared.domain.profile_schema import ProfileSchema, typed_attributes
from shared.domain.profiles import profile_document


async def document(connection: asyncpg.Connection, tenant: str, schema: ProfileSchema,
                   row: dict[str, Any]) -> dict[str, Any]:
    """The profile as the API shows it: typed attributes, consent and subscriptions."""
    consent = await consent_store.read_consent(connection, tenant, row["profile_id"])
    topics = tuple(t.id for t in schema.topics)
    return profile_document(row, typed_attributes(schema, row["attributes"]),
                            consent_view(consent, topics))
