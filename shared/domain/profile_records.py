"""Records on ``parcours.profiles.v1``: profile writes and erasures internal systems
produce straight to Kafka. Pure: no I/O.

- Key: ``<tenant>\\0<profileId>`` in UTF-8 (a NUL byte between them; neither contains
  one). Compaction keeps the last record of each key: the profile's last write, or its
  tombstone.
- Upsert: a JSON value ``{"tenant", "profileId", "mode": "merge"|"replace", "profile":
  {...}}``; ``profile`` is the body of ``PATCH`` (merge) or ``PUT`` (replace)
  ``/v1/profiles/{profileId}``, checked against the tenant's schema like the API's.
  ``tenant`` and ``profileId`` repeat the key's, so the signature (over the value) covers
  whose profile it is.
- Tombstone: a null value: erase the profile (as ``DELETE /v1/profiles/{profileId}``).

Signed like ``parcours.events.kafka.v1`` (``record_signing``): headers
``parcours-key-id`` and ``parcours-signature``, HMAC-SHA256 with a ``kafka`` key of the
tenant over the **value bytes** of an upsert, and over the **key bytes** of a tombstone
(which has no value). The key's tenant must be the signing key's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.domain.deadletter import invalid_reason
from shared.domain.exact import read_exact
from shared.domain.profiles import PROFILE_ID

SEPARATOR = b"\x00"
_PROFILE_ID = re.compile(PROFILE_ID)
_TENANT = re.compile(r"^[^\x00-\x1f]{1,128}$")
UNDECLARED = ("not an attribute of this tenant's profile schema; declare it with PUT"
              " /admin/v1/profile-schema")


class ProfileRecord(BaseModel):
    """The value of an upsert on ``parcours.profiles.v1``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    tenant: str = Field(min_length=1, max_length=128,
                        description="the tenant, as in the record's key")
    profile_id: str = Field(alias="profileId", pattern=PROFILE_ID,
                            description="the profile id, as in the record's key")
    mode: Literal["merge", "replace"] = Field(
        "merge", description="merge: as PATCH /v1/profiles/{profileId} (what is left out "
        "stays, null clears); replace: as PUT (what is left out is cleared)")
    profile: dict[str, Any] = Field(
        description="the body of PATCH or PUT /v1/profiles/{profileId}: built-in fields, "
                    "attributes declared in the tenant's profile schema, pushDevices, consent, "
                    "topics, consentSource; checked against the schema like the API's")


@dataclass(frozen=True)
class Bad:
    """Why a record is not applied; it is dead-lettered with this reason."""

    reason: str


def profile_key(tenant: str, profile_id: str) -> bytes:
    return tenant.encode() + SEPARATOR + profile_id.encode()


def parse_key(key: bytes | None) -> tuple[str, str] | Bad:
    """(tenant, profile id) of a record's key."""
    shape = "the record's key must be <tenant>\\0<profileId> in UTF-8"
    if not key or SEPARATOR not in key:
        return Bad(f"invalid: key: {shape}")
    raw_tenant, _, raw_id = key.partition(SEPARATOR)
    try:
        tenant, profile_id = raw_tenant.decode(), raw_id.decode()
    except UnicodeDecodeError:
        return Bad(f"invalid: key: {shape}")
    if not _TENANT.match(tenant):
        return Bad(f"invalid: key: {shape} (the tenant is empty or malformed)")
    if not _PROFILE_ID.match(profile_id):
        return Bad("invalid: key: the profile id must be 1 to 128 of A-Z a-z 0-9 _ . @ + -")
    return tenant, profile_id


def signed_bytes(key: bytes | None, value: bytes | None) -> bytes | None:
    """What the signature covers: the value of an upsert, the key of a tombstone."""
    return value if value is not None else key


def read_upsert(value: bytes, tenant: str, profile_id: str) -> tuple[ProfileRecord, Any] | Bad:
    """The upsert's envelope and its profile body (JSON, decimals exact), once the value
    names the key's tenant and profile."""
    try:
        parsed = read_exact(value)
    except (ValueError, RecursionError) as error:
        return Bad(f"invalid: not JSON: {str(error)[:200]}")
    try:
        record = ProfileRecord.model_validate(parsed)
    except ValidationError as error:
        return Bad(invalid_reason(error))
    if record.tenant != tenant:
        return Bad("invalid: tenant: does not match the tenant in the record's key")
    if record.profile_id != profile_id:
        return Bad("invalid: profileId: does not match the profile id in the record's key")
    return record, parsed["profile"]


def profile_invalid(error: ValidationError) -> str:
    """``invalid: profile.attributes.lifetimeValue: …``; an undeclared attribute says where
    to declare it."""
    errors = error.errors(include_url=False, include_input=False, include_context=False)
    named = []
    for e in errors[:5]:
        message = (UNDECLARED if e["type"] == "extra_forbidden" and e["loc"][:1] == (
            "attributes",) else e["msg"])
        named.append(f"{'.'.join(map(str, ('profile', *e['loc'])))}: {message}")
    more = len(errors) - 5
    return "invalid: " + "; ".join(named) + (f"; and {more} more" if more > 0 else "")
