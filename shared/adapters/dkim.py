"""DKIM keys and signatures: RSA 2048 keys made here, their private half kept encrypted
(Fernet, with the master key of the settings), messages signed with dkimpy.

Only the public half leaves: as the TXT record to publish at ``<selector>._domainkey.<domain>``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import dkim
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

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


def signature(message: bytes, key: SigningKey) -> bytes:
    """The DKIM-Signature header (with its CRLF) to put in front of ``message``.
    relaxed/relaxed: a relay that refolds or re-spaces headers keeps it valid."""
    return bytes(dkim.sign(message, key.selector.encode(), key.domain.encode(), key.private_pem,
                           canonicalize=(b"relaxed", b"relaxed"),
                           include_headers=list(SIGNED_HEADERS)))
