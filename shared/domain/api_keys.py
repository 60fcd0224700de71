"""API keys: ``prc_<scope>_<key id>_<secret>``. The key id finds the row; the secret is
compared by its SHA-256 in constant time. Scopes keep administration and ingestion apart;
a ``kafka`` key signs records produced straight to Kafka (``record_signing``) and opens no
HTTP endpoint; a ``profiles`` key reads and writes profiles (the profile API).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    ADMIN = "admin"
    INGEST = "ingest"
    KAFKA = "kafka"
    PROFILES = "profiles"


_KEY = re.compile(r"^prc_(admin|ingest|kafka|profiles)_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class ParsedKey:
    scope: Scope
    key_id: str
    secret: str


def format_key(scope: Scope, key_id: str, secret: str) -> str:
    return f"prc_{scope.value}_{key_id}_{secret}"


def parse_key(presented: str) -> ParsedKey | None:
    match = _KEY.match(presented)
    if match is None:
        return None
    return ParsedKey(Scope(match[1]), match[2], match[3])


def secret_digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def secret_matches(secret: str, digest: bytes) -> bool:
    return hmac.compare_digest(secret_digest(secret), digest)
