"""A UUID's text from its bytes without ``uuid.UUID`` objects, for hot paths that make or
read one per request or per profile (a UUID object and its ``str`` cost about four times
as much)."""

from __future__ import annotations


def uuid_text(raw: bytes) -> str:
    """``str(uuid.UUID(bytes=raw))`` for 16 bytes: 0.5 µs against 2.1."""
    x = raw.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def uuid5_text(sha1_digest: bytes) -> str:
    """``str(uuid.uuid5(namespace, name))`` from ``sha1(namespace.bytes + name)``'s digest:
    its first 16 bytes with the version (5) and variant bits set as ``uuid5`` sets them."""
    d = bytearray(sha1_digest[:16])
    d[6] = (d[6] & 0x0F) | 0x50
    d[8] = (d[8] & 0x3F) | 0x80
    return uuid_text(bytes(d))
