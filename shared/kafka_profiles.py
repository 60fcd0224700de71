"""For producers: the records of ``parcours.profiles.v1``, signed with a ``kafka`` key of
your tenant (``shared/kafka_signing.py``)::

    signer = RecordSigner(os.environ["PARCOURS_KAFKA_KEY"])
    key, value, headers = profile_upsert(signer, "acme", "cust-42", {"firstName": "Ada"})
    await producer.send_and_wait("parcours.profiles.v1", value, key=key, headers=headers)
    key, value, headers = profile_tombstone(signer, "acme", "cust-42")   # erase it
    await producer.send_and_wait("parcours.profiles.v1", value, key=key, headers=headers)

In any language: the key is ``<tenant>`` 0x00 ``<profileId>`` in UTF-8; an upsert's value
is ``{"tenant", "profileId", "mode": "merge"|"replace", "profile": {...}}`` and its
``parcours-signature`` the HMAC-SHA256 of the value bytes; a tombstone has a null value and
its signature is the HMAC-SHA256 of the key bytes. The record's timestamp is the write's
time (last writer wins): pass ``timestamp_ms`` to ``send`` to date it yourself.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from shared.domain.profile_records import profile_key
from shared.kafka_signing import RecordSigner

SignedRecord = tuple[bytes, bytes | None, list[tuple[str, bytes]]]  # key, value, headers


def profile_upsert(signer: RecordSigner, tenant: str, profile_id: str,
                   profile: dict[str, Any], mode: Literal["merge", "replace"] = "merge"
                   ) -> SignedRecord:
    """A signed write of ``profile`` (the body of PATCH, or PUT with ``replace``).
    Decimals: pass ``decimal.Decimal`` or a string to keep every digit."""
    value = orjson.dumps({"tenant": tenant, "profileId": profile_id, "mode": mode,
                          "profile": profile}, default=str)
    return profile_key(tenant, profile_id), value, signer.headers(value)


def profile_tombstone(signer: RecordSigner, tenant: str, profile_id: str) -> SignedRecord:
    """A signed erasure: a null value, its key signed."""
    key = profile_key(tenant, profile_id)
    return key, None, signer.headers(key)
