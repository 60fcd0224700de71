"""What provider webhooks and apps need from PostgreSQL besides who a sent message was for
(``sent_messages``): the profiles behind a phone number, and a profile's push devices.
One concern: reading and changing those rows; the reactions themselves go through
``reaction_store``."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

# The profiles with that number, each with its last SMS (the message a STOP answers) and
# its SMS marketing consent as it stands.
_BY_PHONE = """
SELECT p.profile_id,
       (SELECT c.message_id FROM contact_history c
         WHERE c.tenant_id = p.tenant_id AND c.profile_id = p.profile_id
           AND c.channel = 'sms' ORDER BY c.contact_at DESC LIMIT 1) AS last_sms,
       k.value AS marketing, k.source AS marketing_source
  FROM profiles p
  LEFT JOIN consents k ON k.tenant_id = p.tenant_id AND k.profile_id = p.profile_id
                      AND k.kind = 'marketing' AND k.name = 'sms'
 WHERE p.tenant_id = $1 AND p.mobile_phone = $2
 LIMIT 100
"""


@dataclass(frozen=True)
class PhoneOwner:
    profile_id: str
    last_sms: str | None
    marketing: str | None
    marketing_source: str | None


async def phone_owners(connection: asyncpg.Connection, tenant: str, phone: str
                       ) -> list[PhoneOwner]:
    rows = await connection.fetch(_BY_PHONE, tenant, phone.strip())
    return [PhoneOwner(r["profile_id"], r["last_sms"] and str(r["last_sms"]), r["marketing"],
                       r["marketing_source"]) for r in rows]


async def tenant_exists(connection: asyncpg.Connection | asyncpg.Pool, tenant: str) -> bool:
    return bool(await connection.fetchval(
        "SELECT EXISTS (SELECT 1 FROM tenants WHERE tenant_id = $1)", tenant))


_FORGET_DEVICE = """
UPDATE profiles
   SET push_registrations = COALESCE((
         SELECT jsonb_agg(d) FROM jsonb_array_elements(push_registrations) d
          WHERE d->>'registrationToken' <> $3), '[]'::jsonb),
       updated_at = now()
 WHERE tenant_id = $1 AND profile_id = $2
   AND push_registrations @> jsonb_build_array(jsonb_build_object('registrationToken', $3::text))
"""


async def forget_device(connection: asyncpg.Connection | asyncpg.Pool, tenant: str,
                        profile_id: str, token: str) -> bool:
    """Remove the device with that token from the profile; whether it had it."""
    status: str = await connection.execute(_FORGET_DEVICE, tenant, profile_id, token)
    return status != "UPDATE 0"
