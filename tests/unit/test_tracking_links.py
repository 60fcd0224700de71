"""Signed tracking tokens: what they name, rotation, and every way of altering one."""

from __future__ import annotations

import base64
import uuid

import pytest

from shared.domain.tracking_links import (
    KeyringError,
    Tracked,
    click_url,
    open_url,
    parse_keyring,
    sign,
    verify,
)

KEYS = parse_keyring("k2:second-secret-0123456789,k1:first-secret-0123456789")
MESSAGE = str(uuid.uuid4())


def test_a_click_token_names_tenant_message_and_link() -> None:
    token = sign(KEYS, "click", "acme", MESSAGE, 3)
    assert token.startswith("k2.")
    assert verify(KEYS, token) == Tracked("click", "acme", MESSAGE, 3)


def test_an_open_token_names_no_link() -> None:
    assert verify(KEYS, sign(KEYS, "open", "acme", MESSAGE)) == Tracked("open", "acme",
                                                                      MESSAGE, None)


def test_urls() -> None:
    assert open_url("https://t.example/", KEYS, "acme", MESSAGE).startswith(
        "https://t.example/o/k2.")
    assert open_url("https://t.example", KEYS, "acme", MESSAGE).endswith(".gif")
    assert click_url("https://t.example", KEYS, "acme", MESSAGE, 0).startswith(
        "https://t.example/c/k2.")


def test_an_older_key_still_verifies_and_a_dropped_one_does_not() -> None:
    old = parse_keyring("k1:first-secret-0123456789")
    token = sign(old, "click", "acme", MESSAGE, 1)
    assert verify(KEYS, token) == Tracked("click", "acme", MESSAGE, 1)
    assert verify(parse_keyring("k3:third-secret-0123456789"), token) is None


def _flip(token: str, position: int) -> str:
    key_id, encoded = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    raw[position] ^= 1
    return f"{key_id}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


@pytest.mark.parametrize("position", [0, 1, 17, 18, 19, -1])  # kind, message, index, tenant, mac
def test_any_altered_byte_is_refused(position: int) -> None:
    assert verify(KEYS, _flip(sign(KEYS, "click", "acme", MESSAGE, 2), position)) is None


def test_another_tenant_or_key_id_or_garbage_is_refused() -> None:
    token = sign(KEYS, "click", "acme", MESSAGE, 2)
    assert verify(KEYS, "k1." + token.split(".", 1)[1]) is None  # same bytes, other key id
    for bad in ("", "k2", "k2.", "k2.!!!", "nokey.abc", token[:-4], token + "AA", "x" * 1000):
        assert verify(KEYS, bad) is None


def test_a_secret_alone_forges_nothing_under_another_id() -> None:
    forger = parse_keyring("k2:guessed-secret-0123456789")
    assert verify(KEYS, sign(forger, "open", "acme", MESSAGE)) is None


def test_sign_refuses_what_it_cannot_name() -> None:
    with pytest.raises(ValueError):
        sign(KEYS, "click", "acme", MESSAGE)
    with pytest.raises(ValueError):
        sign(KEYS, "open", "acme", MESSAGE, 1)
    with pytest.raises(ValueError):
        sign(KEYS, "click", "acme", MESSAGE, 70_000)


@pytest.mark.parametrize("text", ["", "k1", "k1:short", "bad id:0123456789abcdef",
                                  "k1:0123456789abcdef,k1:0123456789abcdef"])
def test_keyring_refuses_bad_settings(text: str) -> None:
    with pytest.raises(KeyringError):
        parse_keyring(text)
