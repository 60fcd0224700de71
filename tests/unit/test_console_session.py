"""The console's session cookie: sealed (not readable, not alterable), for a lifetime,
opened by any key of the ring so keys rotate without signing anyone out."""

import time

import pytest

from services.console.session import SessionSeal, csrf_matches


def test_a_sealed_session_opens_to_what_was_sealed_and_hides_the_key():
    seal = SessionSeal("c1:first-secret", 3600)
    token, session = seal.seal("prc_admin_abc_secret", "acme", "ACME Corp")
    assert "prc_admin" not in token and "acme" not in token
    opened = seal.open(token)
    assert opened == session
    assert (opened.api_key, opened.tenant, opened.tenant_name) == (
        "prc_admin_abc_secret", "acme", "ACME Corp")
    assert len(opened.csrf) >= 40


def test_an_altered_foreign_or_missing_cookie_opens_to_nothing():
    seal = SessionSeal("c1:first-secret", 3600)
    token, _ = seal.seal("key", "acme", "ACME")
    flipped = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    assert seal.open(flipped) is None
    assert SessionSeal("c9:another-secret", 3600).open(token) is None
    assert seal.open(None) is None and seal.open("") is None
    assert seal.open("x" * 5000) is None


def test_a_session_ends_with_its_lifetime():
    seal = SessionSeal("c1:first-secret", 60)
    token, _ = seal.seal("key", "acme", "ACME")
    assert seal.open(token, now=time.time() + 30) is not None
    assert seal.open(token, now=time.time() + 120) is None


def test_keys_rotate_without_signing_anyone_out_until_the_old_one_is_dropped():
    old = SessionSeal("c1:old-secret", 3600)
    token, _ = old.seal("key", "acme", "ACME")
    rotated = SessionSeal("c2:new-secret,c1:old-secret", 3600)
    assert rotated.open(token) is not None  # still open
    fresh, _ = rotated.seal("key", "acme", "ACME")
    assert SessionSeal("c2:new-secret", 3600).open(fresh) is not None  # sealed with the new
    assert SessionSeal("c2:new-secret", 3600).open(token) is None  # old one dropped


def test_no_key_is_a_clear_error():
    with pytest.raises(ValueError, match="no key"):
        SessionSeal(" , ", 60)


def test_the_csrf_token_must_be_the_sessions():
    seal = SessionSeal("c1:s", 60)
    _, session = seal.seal("key", "acme", "ACME")
    assert csrf_matches(session, session.csrf)
    assert not csrf_matches(session, None) and not csrf_matches(session, "")
    assert not csrf_matches(session, session.csrf[:-1] + "x")
