"""A UUID's text from its bytes without ``uuid.UUID`` objects, for hot paths that make or
read one per request or per profile (a UUID object and its ``str`` cost about four times
as much)."""

from __future__ import annotations


def uuid_text(raw: bytes) -> str:
    """``str(uuid.UUID(bytes=raw))`` for 16 bytes: 0.5 µs against 2.1."""
    x = raw.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


# A uuid5's variant digit from the hex digit in its place: the top two bits set to 10.
_VARIANT = {f"{n:x}": f"{8 | (n & 3):x}" for n in range(16)}


def uuid5_text(sha1_digest: bytes) -> str:
    """``str(uuid.uuid5(namespace, name))`` from ``sha1(namespace.bytes + name)``'s digest:
    its first 16 bytes with the version (5) and variant bits set as ``uuid5`` sets them —
    on the hex digits (1.16 µs against 2.17 through a bytearray: one a profile entering)."""
    x = sha1_digest.hex()
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}"


# A uuid5's version (5) and variant (10) bits, and the mask of those it replaces.
_UUID5_BITS = (5 << 76) | (0x8 << 60)
_UUID5_KEEP = ~((0xF << 76) | (0xC << 60)) & ((1 << 128) - 1)


def uuid5_bytes(sha1_digest: bytes) -> bytes:
    """``uuid.uuid5(namespace, name).bytes`` from ``sha1(namespace.bytes + name)``'s
    digest, the bits set on one integer (0.64 µs against 0.95 through a bytearray): a
    profile entering set-wise sends its instance id in binary."""
    return ((int.from_bytes(sha1_digest[:16]) & _UUID5_KEEP) | _UUID5_BITS).to_bytes(16)
