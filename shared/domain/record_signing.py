"""Signed Kafka records: which tenant a record produced straight to Kafka acts for.

A record on an input topic names its tenant in its payload, and any system that may write
the topic could name any tenant. So a producer signs each record with a ``kafka`` key of
its tenant, in two record headers:

- ``parcours-key-id``: the key's id (the 12 characters after ``prc_kafka_``);
- ``parcours-signature``: HMAC-SHA256 of the record's value bytes, exactly as produced,
  keyed with the key's secret (the 43 characters after ``prc_kafka_<key id>_``, as ASCII
  bytes), in hexadecimal.

The processor reads a record only if the signature matches its value, the key exists, is
a ``kafka`` key and is not revoked, and the tenant the payload names is the key's.

A key's secret is never stored: it is derived from its id with a server secret
(``signing_secret``), handed out once at creation, and derived again to verify. So a
signature made up for an unknown or invented key id fails before any key lookup, and a
database dump gives no way to sign; revoking the key row ends the secret's use.

Pure: no I/O. Reasons say which check failed, never whose key it is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

from shared.domain.api_keys import Scope

KEY_ID_HEADER = "parcours-key-id"
SIGNATURE_HEADER = "parcours-signature"
# Domain separation: the server secret derives nothing else with this prefix.
_DERIVATION = b"parcours kafka record signing v1\x00"
_KEY_ID = re.compile(r"^[a-z0-9]{12}$")
_HEX_SIGNATURE = re.compile(r"^[0-9a-fA-F]{64}$")

Headers = Iterable[tuple[str, bytes]]


def signing_secret(server_secret: bytes, key_id: str) -> str:
    """The secret of the ``kafka`` key ``key_id``: 43 URL-safe base64 characters (256 bits)."""
    digest = hmac.new(server_secret, _DERIVATION + key_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(secret: str, value: bytes) -> str:
    """The ``parcours-signature`` header's value for a record whose value is ``value``."""
    return hmac.new(secret.encode(), value, hashlib.sha256).hexdigest()


def signed_headers(key_id: str, secret: str, value: bytes) -> list[tuple[str, bytes]]:
    """Both headers, as Kafka clients take them."""
    return [(KEY_ID_HEADER, key_id.encode()), (SIGNATURE_HEADER, sign(secret, value).encode())]


@dataclass(frozen=True)
class SigningKey:
    """What verification needs of a key row."""

    key_id: str
    tenant: str
    scope: Scope
    revoked: bool


@dataclass(frozen=True)
class Signed:
    """The record's value carries a valid signature under the key ``key_id``'s secret."""

    key_id: str


@dataclass(frozen=True)
class Refused:
    """Why a record is not accepted as its payload's tenant's; no status is written."""

    reason: str


def _one(headers: Headers, name: str) -> bytes | Refused:
    values = [value for key, value in headers if key == name]
    if not values:
        return Refused(f"unsigned: the record has no {name} header")
    if len(values) > 1:
        return Refused(f"unauthenticated: the record has {len(values)} {name} headers, "
                       "not one")
    return values[0] or b""


def check_signature(headers: Headers | None, value: bytes | None,
                    server_secret: bytes) -> Signed | Refused:
    """Whether ``value`` was signed with the secret of the key the headers name. Needs no
    lookup: the secret is derived from the key id, so an invented key id fails here."""
    headers = list(headers or ())
    key_id = _one(headers, KEY_ID_HEADER)
    if isinstance(key_id, Refused):
        return key_id
    signature = _one(headers, SIGNATURE_HEADER)
    if isinstance(signature, Refused):
        return signature
    presented_id = key_id.decode("ascii", errors="replace")
    presented = signature.decode("ascii", errors="replace")
    if not _KEY_ID.match(presented_id):
        return Refused(f"unauthenticated: {KEY_ID_HEADER} is not a key id "
                       "(the 12 characters after prc_kafka_)")
    if not _HEX_SIGNATURE.match(presented):
        return Refused(f"unauthenticated: {SIGNATURE_HEADER} is not 64 hexadecimal digits "
                       "(HMAC-SHA256)")
    expected = sign(signing_secret(server_secret, presented_id), value or b"")
    if not hmac.compare_digest(expected, presented.lower()):
        return Refused("unauthenticated: the signature does not match the record's value "
                       "(signed with another secret, or the value changed after signing)")
    return Signed(presented_id)


def authorize(signed: Signed, key: SigningKey | None) -> SigningKey | Refused:
    """The key a validly signed record was signed with, if it may still sign."""
    if key is None or key.key_id != signed.key_id:
        return Refused("unauthenticated: the signing key does not exist")
    if key.revoked:
        return Refused("unauthenticated: the signing key is revoked")
    if key.scope is not Scope.KAFKA:
        return Refused("unauthenticated: the signing key is not a kafka key")
    return key


def check_tenant(key: SigningKey, record_tenant: str) -> Refused | None:
    """None when the payload's tenant is the signing key's."""
    if record_tenant != key.tenant:
        return Refused("forbidden: the record names a tenant its signing key does not "
                       "belong to")
    return None
