"""DKIM keys and signatures: RSA 2048 keys made here, their private half kept encrypted
(Fernet, with the master key of the settings), messages signed as dkimpy signs them (its
parsing, canonicalization, header hashing and folding) but with OpenSSL's RSA: dkimpy's own
is Python's ``pow`` without the key's CRT parameters, ~20 ms a message, against ~1 ms
(bench/dkim_cost.py). The unit tests check the header is byte for byte dkimpy's.

Only the public half leaves: as the TXT record to publish at ``<selector>._domainkey.<domain>``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass

import dkim
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from dkim import canonicalization

from shared.domain.sender_identity import SIGNED_HEADERS


class MasterKeyMissing(Exception):
    """No PARCOURS_DKIM_MASTER_KEY: no key can be stored, nothing signed."""


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    public_b64: str  # SubjectPublicKeyInfo, DER, base64: the record's p=


def generate_key() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_der = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return KeyPair(private_pem, base64.b64encode(public_der).decode())


def dns_record(public_b64: str) -> str:
    """The TXT record's text (split it in 255-character strings where the DNS host asks)."""
    return f"v=DKIM1; k=rsa; p={public_b64}"


def dns_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


class Vault:
    """Encrypts private keys for storage, and decrypts them to sign."""

    def __init__(self, master_key: str | None) -> None:
        try:
            self._fernet = Fernet(master_key) if master_key else None
        except ValueError as error:
            raise ValueError("PARCOURS_DKIM_MASTER_KEY is not a Fernet key (32 bytes, "
                             "url-safe base64): make one with `python -c 'from cryptography"
                             ".fernet import Fernet; print(Fernet.generate_key().decode())'`"
                             ) from error

    @property
    def ready(self) -> bool:
        return self._fernet is not None

    def _key(self) -> Fernet:
        if self._fernet is None:
            raise MasterKeyMissing("PARCOURS_DKIM_MASTER_KEY is not set: DKIM keys cannot be "
                                   "stored nor used")
        return self._fernet

    def seal(self, private_pem: bytes) -> bytes:
        return self._key().encrypt(private_pem)

    def open(self, sealed: bytes) -> bytes:
        """ValueError when the key was sealed with another master key."""
        try:
            return self._key().decrypt(sealed)
        except InvalidToken as error:
            raise ValueError("the DKIM key was encrypted with another master key") from error


@dataclass(frozen=True)
class SigningKey:
    domain: str
    selector: str
    private_pem: bytes


@dataclass(frozen=True)
class _LoadedKey:
    domain: bytes
    selector: bytes
    rsa: rsa.RSAPrivateKey


_loaded: dict[SigningKey, _LoadedKey] = {}  # one per key in use: parsed once, not per message
_CANONICAL = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
_NAME = b"DKIM-Signature"


def _loaded_key(key: SigningKey) -> _LoadedKey:
    loaded = _loaded.get(key)
    if loaded is None:
        private = serialization.load_pem_private_key(key.private_pem, password=None)
        if not isinstance(private, rsa.RSAPrivateKey):
            raise ValueError("a DKIM key here is RSA")
        if len(_loaded) >= 1000:
            _loaded.clear()
        loaded = _loaded[key] = _LoadedKey(key.domain.encode(), key.selector.encode(),
                                           private)
    return loaded


_HEADER_END = re.compile(rb"\r?\n\r?\n")
_TRAILING_WSP = re.compile(rb"[\t ]+\r\n")
_WSP_RUNS = re.compile(rb"[\t ]{2,}|\t")


def _parsed(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkim.rfc822_parse, which splits and joins the whole body line by line: here only
    the header is parsed, the body's line ends made CRLF in two passes of C."""
    end = _HEADER_END.search(message)
    if end is None:
        return dkim.rfc822_parse(message)  # type: ignore[no-any-return]
    headers, _ = dkim.rfc822_parse(message[:end.start()] + b"\r\n\r\n")
    return headers, message[end.end():].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _relaxed_body(body: bytes) -> bytes:
    """dkimpy's relaxed body canonicalization, its regular expressions run only where they
    change something: a single space is left alone instead of replaced by itself. Scanning
    a body with them cost ~85 ns a byte (5 ms for 60 kB); our quoted-printable bodies have
    no tab, no double space and no space before a line end, so a search in C rules them
    out."""
    if b" \r\n" in body or b"\t\r\n" in body:
        body = _TRAILING_WSP.sub(b"\r\n", body)
    if b"\t" in body or b"  " in body:
        body = _WSP_RUNS.sub(b" ", body)
    return bytes(canonicalization.correct_empty_body(
        canonicalization.strip_trailing_lines(body)))


def _fields(key: _LoadedKey, body_hash: bytes, at: int) -> list[tuple[bytes, bytes]]:
    return [(b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", b"relaxed/relaxed"),
            (b"d", key.domain), (b"i", b"@" + key.domain), (b"q", b"dns/txt"),
            (b"s", key.selector), (b"t", str(at).encode()),
            (b"h", b" : ".join(SIGNED_HEADERS)), (b"bh", body_hash),
            # a b= placeholder long enough that folding puts it on a line of its own
            (b"b", b"0" * 60)]


def signature(message: bytes, key: SigningKey, at: int | None = None) -> bytes:
    """The DKIM-Signature header (with its CRLF) to put in front of ``message``.
    relaxed/relaxed: a relay that refolds or re-spaces headers keeps it valid. Headers
    listed but absent are signed absent: added on the way, they break the signature."""
    loaded = _loaded_key(key)
    headers, body = _parsed(message)
    body_hash = base64.b64encode(hashlib.sha256(_relaxed_body(body)).digest())
    fields = _fields(loaded, body_hash, int(time.time()) if at is None else at)
    unsigned = dkim.fold(b"; ".join(b"=".join(f) for f in fields), namelen=len(_NAME),
                         linesep=b"\r\n")
    unsigned = dkim.RE_BTAG.sub(b"\\1", unsigned)
    hasher = dkim.HashThrough(hashlib.sha256(), False)
    dkim.hash_headers(hasher, _CANONICAL, _CANONICAL.canonicalize_headers(headers),
                      SIGNED_HEADERS, (_NAME, b" " + unsigned), dict(fields))
    signed = loaded.rsa.sign(hasher.digest(), padding.PKCS1v15(),
                             utils.Prehashed(hashes.SHA256()))
    fields[-1] = (b"b", base64.b64encode(signed))
    value = b"; ".join(b"=".join(f) for f in fields) + b"\r\n"
    return _NAME + b": " + dkim.fold(value, namelen=len(_NAME), linesep=b"\r\n")

