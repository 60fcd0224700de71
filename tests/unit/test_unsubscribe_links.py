"""Unsubscribe tokens: what a token names comes back only from a token signed with a key
of the ring; anything altered, truncated or signed for something else is refused."""

from __future__ import annotations

import base64
import email
import uuid
from email import policy

import dkim as dkimpy

from shared.adapters import dkim
from shared.adapters.mime import encode_email
from shared.domain import tracking_links, unsubscribe_links
from shared.domain.events import Channel
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import SendRequest
from shared.domain.tracking_links import parse_keyring
from shared.domain.unsubscribe_links import Unsubscribe, sign, verify
from shared.sending.unsubscribe import unsubscribe_headers
from shared.settings import Settings

KEYS = parse_keyring("u2:new-secret-sixteen-chars,u1:old-secret-sixteen-chars")
MESSAGE = str(uuid.uuid4())


def test_round_trip_url_safe() -> None:
    token = sign(KEYS, "acme", "p/1 é.x", "email", MESSAGE)
    assert token.startswith("u2.")
    assert all(c.isalnum() or c in "-_." for c in token)
    assert verify(KEYS, token) == Unsubscribe("acme", "p/1 é.x", "email", MESSAGE)


def test_rotation_old_key_still_verifies_unknown_refused() -> None:
    old = parse_keyring("u1:old-secret-sixteen-chars")
    token = sign(old, "acme", "p1", "sms", MESSAGE)
    assert verify(KEYS, token) == Unsubscribe("acme", "p1", "sms", MESSAGE)
    assert verify(parse_keyring("u3:other-secret-sixteen"), token) is None


def test_altered_or_foreign_tokens_refused() -> None:
    token = sign(KEYS, "acme", "p1", "email", MESSAGE)
    key_id, encoded = token.split(".")
    raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    for i in range(len(raw)):  # every byte, the MAC's included
        altered = raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1:]
        assert verify(KEYS, f"{key_id}.{base64.urlsafe_b64encode(altered).decode()}") is None
    assert verify(KEYS, token[:-3]) is None
    assert verify(KEYS, "u2") is None
    assert verify(KEYS, "u2.%%%") is None
    assert verify(KEYS, "") is None
    # a tracking link's token, under the same secret, is no unsubscribe token
    click = tracking_links.sign(KEYS, "click", "acme", MESSAGE, 0)
    assert verify(KEYS, click) is None


def test_headers_and_when() -> None:
    headers = unsubscribe_links.list_unsubscribe_headers("https://t.example/u/x",
                                                         "unsubscribe+x@b.example")
    assert headers == [("List-Unsubscribe",
                        "<https://t.example/u/x>, <mailto:unsubscribe+x@b.example>"),
                       ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]
    assert unsubscribe_links.list_unsubscribe_headers("https://t/u/x")[0][1] == "<https://t/u/x>"
    assert unsubscribe_links.wants_unsubscribe("p1", marketing=True, journey=False)
    assert unsubscribe_links.wants_unsubscribe("p1", marketing=False, journey=True)
    assert not unsubscribe_links.wants_unsubscribe("p1", marketing=False, journey=False)
    assert not unsubscribe_links.wants_unsubscribe(None, marketing=True, journey=True)


def _request(**fields: object) -> SendRequest:
    base: dict[str, object] = {
        "messageId": MESSAGE, "tenant": "acme", "channel": "email", "to": {"email": "a@x.org"},
        "profileId": "p1", "ctx": {}, "acceptedAt": 0.0,
        "origin": {"kind": "event", "eventId": "e1", "pKey": "k"}}
    return SendRequest.model_validate(base | fields)


def test_the_sender_signs_a_link_into_marketing_and_journey_mail_only() -> None:
    settings = Settings(tracking_base_url="https://t.example",
                        unsubscribe_keys="u1:sixteen-chars-secret")
    keys = parse_keyring("u1:sixteen-chars-secret")
    journey = {"kind": "journey", "journeyId": "j", "journeyVersion": 1, "nodeId": "n",
               "instanceId": "i"}
    assert unsubscribe_headers(settings, _request()) == []  # transactional
    assert unsubscribe_headers(settings, _request(marketing=True, profileId=None)) == []
    assert unsubscribe_headers(settings, _request(origin=journey))
    headers = unsubscribe_headers(settings, _request(marketing=True, profileId="p" * 300))
    rendered = RenderedMessage(Channel.EMAIL, {"subject": "s", "text": "t", "html": "<p>h</p>"},
                               {})
    raw = encode_email(rendered, sender="a@example.com", recipient="a@x.org",
                       message_id=MESSAGE, domain="example.com", headers=headers)
    read = email.message_from_bytes(raw, policy=policy.default)
    assert read["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = read["List-Unsubscribe"]
    assert link.startswith("<https://t.example/u/") and link.endswith(">")
    token = link[len("<https://t.example/u/"):-1]
    assert verify(keys, token) == Unsubscribe("acme", "p" * 300, "email", MESSAGE)


def test_dkim_signs_the_unsubscribe_headers() -> None:
    """RFC 8058 §3: the signature covers List-Unsubscribe and List-Unsubscribe-Post, so a
    relay cannot point the one-click elsewhere."""
    pair = dkim.generate_key()
    key = dkim.SigningKey("mail.example.com", "s1", pair.private_pem)
    rendered = RenderedMessage(Channel.EMAIL, {"subject": "s", "text": "t", "html": "<p>h</p>"},
                               {})
    message = encode_email(rendered, sender="a@mail.example.com", recipient="a@x.org",
                           message_id=MESSAGE, domain="example.com",
                           headers=unsubscribe_links.list_unsubscribe_headers(
                               "https://t.example/u/" + "x" * 400))
    signed = dkim.signature(message, key) + message
    record = dkim.dns_record(pair.public_b64).encode()

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == b"s1._domainkey.mail.example.com." else b""

    assert dkimpy.verify(signed, dnsfunc=dns)
    header = str(email.message_from_bytes(signed, policy=policy.default)["DKIM-Signature"])
    tags = dict(t.strip().split("=", 1) for t in header.replace("\r\n", "").split(";"))
    assert {"list-unsubscribe", "list-unsubscribe-post"} <= {
        h.strip() for h in tags["h"].split(":")}
    assert not dkimpy.verify(signed.replace(b"https://t.example/u/", b"https://evil.example/u/"),
                             dnsfunc=dns)


def test_the_mailto_address_fits_a_local_part_and_verifies_against_its_message() -> None:
    keys = parse_keyring("abcdefghijklmnop:sixteen-chars-secret")  # the longest key id
    address = unsubscribe_links.mailto(keys, "acme", "p1", "email", MESSAGE, "b.example")
    local = address.split("@")[0]
    assert len(local) <= 64 and local == local.lower()
    assert unsubscribe_links.looks_like_mailto(address.upper())
    assert unsubscribe_links.message_of_mailto(address) == ("abcdefghijklmnop", MESSAGE)
    named = unsubscribe_links.named_by(keys, address.upper(), "acme", "p1", "email")
    assert named == Unsubscribe("acme", "p1", "email", MESSAGE)
    # the message's own tenant, profile and channel are part of what is signed
    assert unsubscribe_links.named_by(keys, address, "acme", "p2", "email") is None
    assert unsubscribe_links.named_by(keys, address, "other", "p1", "email") is None
    assert unsubscribe_links.named_by(keys, address, "acme", "p1", "sms") is None
    for i in range(local.index(".") + 1, len(local)):  # every character, the last one's
        for other in "a7":                               # unused bits too
            if other != local[i]:
                altered = f"{local[:i]}{other}{local[i + 1:]}@b.example"
                assert unsubscribe_links.named_by(keys, altered, "acme", "p1", "email") is None
    assert not unsubscribe_links.looks_like_mailto("b+0123@b.example")
