"""Sender identities (what the admin API accepts) and DKIM keys: sealed with the master
key, signing messages that dkimpy verifies against the published record."""

from __future__ import annotations

import email
import time
from email import policy

import dkim as dkimpy
import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from shared.adapters import dkim
from shared.adapters.mime import encode_email
from shared.adapters.smtp import RelaySecurity
from shared.domain import verp
from shared.domain.events import Channel
from shared.domain.rendering import RenderedMessage
from shared.domain.sender_identity import (
    SIGNED_HEADERS,
    SenderIdentity,
    default_identity,
    domain,
    selector,
)
from shared.sending.smtp import SmtpHandOver, relay_security
from shared.settings import Settings


def test_an_identity_folds_its_domains_and_writes_its_from_header() -> None:
    identity = SenderIdentity(fromAddress="News@Mail.Example.COM", fromName="Acme News",
                              replyTo="help@example.com", bounceDomain="Bounces.Example.com.")
    assert identity.fromAddress == "News@mail.example.com"
    assert identity.bounceDomain == "bounces.example.com"
    assert identity.header_from == "Acme News <News@mail.example.com>"


@pytest.mark.parametrize(("field", "value"), [
    ("fromAddress", "no-at-sign"), ("fromAddress", "a b@example.com"),
    ("fromAddress", "é@example.com"), ("fromAddress", "a@localhost"),
    ("replyTo", "x@-bad-.com"), ("bounceDomain", "under_score.example.com"),
    ("bounceDomain", "a" * 64 + ".com"), ("fromName", "two\r\nlines"),
    ("fromAddress", "a\n@example.com"), ("bounceDomain", "b.example.com\nX-Evil: 1"),
])
def test_a_bad_field_is_refused_by_name(field: str, value: str) -> None:
    body = {"fromAddress": "a@example.com", "bounceDomain": "b.example.com", field: value}
    with pytest.raises(ValidationError) as refused:
        SenderIdentity.model_validate(body)
    assert [e["loc"] for e in refused.value.errors()] == [(field,)]


def test_the_default_identity_is_the_settings_mail_from() -> None:
    identity = default_identity("Parcours <no-reply@parcours.localhost>", "bounces.example.com")
    assert (identity.fromName, identity.fromAddress) == ("Parcours", "no-reply@parcours.localhost")
    assert identity.replyTo is None


def test_selectors_and_domains() -> None:
    assert selector(" S2026a ") == "s2026a"
    assert domain("Example.ORG") == "example.org"
    for bad in ("", "-x", "x_y", "a..b", "s1\nx", "s1\x00"):
        with pytest.raises(ValueError):
            selector(bad)


@pytest.fixture(scope="module")
def pair() -> dkim.KeyPair:
    return dkim.generate_key()


def _message(reply_to: str | None = None, text: str = "hello") -> bytes:
    rendered = RenderedMessage(Channel.EMAIL, {"subject": "Grüße", "text": text,
                                               "html": f"<p>{text}</p>"}, {})
    return encode_email(rendered, sender="Acme <news@mail.example.com>", recipient="a@example.org",
                        message_id="m1", domain="example.com", reply_to=reply_to)


def test_a_signed_message_verifies_against_its_dns_record(pair: dkim.KeyPair) -> None:
    vault = dkim.Vault(Fernet.generate_key().decode())
    sealed = vault.seal(pair.private_pem)
    assert pair.private_pem not in sealed
    key = dkim.SigningKey("mail.example.com", "s1", vault.open(sealed))
    message = _message(reply_to="help@example.com")
    signed = dkim.signature(message, key) + message
    record = dkim.dns_record(pair.public_b64).encode()

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == b"s1._domainkey.mail.example.com." else b""

    assert dkimpy.verify(signed, dnsfunc=dns)
    header = email.message_from_bytes(signed, policy=policy.default)["DKIM-Signature"]
    tags = dict(t.strip().split("=", 1) for t in header.replace("\r\n", "").split(";"))
    assert tags["d"] == "mail.example.com" and tags["s"] == "s1"
    assert {"from", "to", "subject", "date", "message-id", "mime-version", "content-type",
            "reply-to", "list-unsubscribe"} <= {h.strip() for h in tags["h"].split(":")}
    tampered = signed.replace(b"Subject:", b"Subject: Re:", 1)
    assert not dkimpy.verify(tampered, dnsfunc=dns)


def test_the_signature_is_dkimpys_byte_for_byte(pair: dkim.KeyPair) -> None:
    """Ours signs with OpenSSL's RSA, dkimpy with Python's pow: the same header."""
    key = dkim.SigningKey("mail.example.com", "s1", pair.private_pem)
    raw = (b"From: a@mail.example.com\r\nTo: b@example.org\r\nSubject:  two  spaces \r\n"
           b"\r\nline  with\t\ttabs   \r\n \t\r\n\ttab first\nbare LF \r\n\r\n\r\n")
    newsletter = _message(reply_to="help@example.com", text="Boots,  coats and\tscarves. " * 900)
    for message in (_message(), newsletter, raw, raw.replace(b"\r\n", b"\n"),
                    b"From: a@mail.example.com\r\n\r\n"):
        for _attempt in range(3):  # both in the same second: t= is part of it
            at = int(time.time())
            theirs = dkimpy.sign(message, b"s1", b"mail.example.com", pair.private_pem,
                                 canonicalize=(b"relaxed", b"relaxed"),
                                 include_headers=list(SIGNED_HEADERS))
            if int(time.time()) == at:
                break
        assert dkim.signature(message, key, at=at) == theirs


def test_keys_need_the_master_key_that_sealed_them(pair: dkim.KeyPair) -> None:
    sealed = dkim.Vault(Fernet.generate_key().decode()).seal(pair.private_pem)
    with pytest.raises(ValueError, match="another master key"):
        dkim.Vault(Fernet.generate_key().decode()).open(sealed)
    with pytest.raises(dkim.MasterKeyMissing):
        dkim.Vault(None).seal(pair.private_pem)
    with pytest.raises(ValueError, match="not a Fernet key"):
        dkim.Vault("too-short")


def test_relay_security_reaches_the_connection() -> None:
    assert RelaySecurity().options() == {"tls": False, "starttls": False,
                                         "username": None, "password": None,
                                         "ca_file": None}
    options = RelaySecurity(starttls=True, username="u", password="p", ca_file="/ca.pem")
    assert options.options()["starttls"] is True and options.options()["username"] == "u"
    with pytest.raises(ValueError, match="exclude each other"):
        RelaySecurity(tls=True, starttls=True)


def test_relay_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"STARTTLS": "true", "USERNAME": "relay-user", "PASSWORD": "pw",
                        "CA_FILE": "/etc/relay-ca.pem"}.items():
        monkeypatch.setenv(f"PARCOURS_SMTP_{name}", value)
    assert relay_security(Settings()) == RelaySecurity(
        starttls=True, username="relay-user", password="pw", ca_file="/etc/relay-ca.pem")
    monkeypatch.setenv("PARCOURS_SMTP_TLS", "true")
    with pytest.raises(ValueError, match="exclude each other"):
        relay_security(Settings())


def test_the_return_path_names_the_message_and_a_foreign_id_falls_back() -> None:
    settings = Settings(verp_secret="s3cret", dkim_master_key=None)
    hand_over = SmtpHandOver.open(settings)
    message = "6c0e8dc6-6c71-5551-aa8a-d6587748e002"
    path = hand_over._return_path(message, "bounces.example.com", "news@example.com")
    assert path.endswith("@bounces.example.com")
    assert verp.message_of(b"s3cret", path) == message
    assert hand_over._return_path("proof-1", "bounces.example.com",
                                  "news@example.com") == "news@example.com"
    with pytest.raises(ValueError, match="not a Fernet key"):
        SmtpHandOver.open(Settings(dkim_master_key="CHANGE-ME"))
