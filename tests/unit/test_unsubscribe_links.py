"""Unsubscribe tokens: what a token names comes back only from a token signed with a key
of the ring; anything altered, truncated or signed for something else is refused."""

from __future__ import annotations

import base64
import uuid

from shared.domain import tracking_links, unsubscribe_links
from shared.domain.tracking_links import parse_keyring
from shared.domain.unsubscribe_links import Unsubscribe, sign, verify

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
