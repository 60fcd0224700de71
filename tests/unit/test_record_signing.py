"""Signed Kafka records (shared/domain/record_signing.py, shared/kafka_signing.py): pure."""

import hashlib
import hmac

import pytest

from shared.domain.api_keys import Scope, format_key
from shared.domain.record_signing import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    Refused,
    Signed,
    SigningKey,
    authorize,
    check_signature,
    check_tenant,
    sign,
    signed_headers,
    signing_secret,
)
from shared.kafka_signing import RecordSigner

SERVER = b"server secret"
KEY_ID = "abcdefghijkl"
SECRET = signing_secret(SERVER, KEY_ID)
VALUE = b'{"tenant":"acme","eventId":"EVTx","eventKey":"k1"}'
ACME = SigningKey(KEY_ID, "acme", Scope.KAFKA, revoked=False)


def test_the_signature_is_hex_hmac_sha256_of_the_value_keyed_with_the_secret_text() -> None:
    # The vector README.md gives producers in other languages (checked with openssl too):
    # printf '%s' '{"tenant":"acme"}' | openssl dgst -sha256 -hmac '0123…ABCDEFG'
    assert sign("0123456789abcdefghijklmnopqrstuvwxyzABCDEFG", b'{"tenant":"acme"}') == (
        "fc32b88a986688c554c07a165bb0dae465c246dafc474e5c180aa0a1232ffae0")
    assert sign(SECRET, VALUE) == hmac.new(SECRET.encode(), VALUE, hashlib.sha256).hexdigest()


def test_a_secret_derives_from_the_key_id_and_the_server_secret_only() -> None:
    assert SECRET == signing_secret(SERVER, KEY_ID)
    assert len(SECRET) == 43 and format_key(Scope.KAFKA, KEY_ID, SECRET).startswith("prc_kafka_")
    assert SECRET != signing_secret(SERVER, "abcdefghijkm")
    assert SECRET != signing_secret(b"another server", KEY_ID)


def test_a_record_signed_with_its_key_verifies() -> None:
    assert check_signature(signed_headers(KEY_ID, SECRET, VALUE), VALUE, SERVER) == Signed(KEY_ID)
    upper = [(KEY_ID_HEADER, KEY_ID.encode()), (SIGNATURE_HEADER, sign(SECRET, VALUE).upper()
                                                 .encode()), ("traceparent", b"00-ab")]
    assert check_signature(upper, VALUE, SERVER) == Signed(KEY_ID)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (None, "unsigned: the record has no parcours-key-id header"),
        ([], "unsigned: the record has no parcours-key-id header"),
        ([(KEY_ID_HEADER, KEY_ID.encode())], "unsigned: the record has no parcours-signature"),
        ([(SIGNATURE_HEADER, sign(SECRET, VALUE).encode())],
         "unsigned: the record has no parcours-key-id header"),
        ([*signed_headers(KEY_ID, SECRET, VALUE), (SIGNATURE_HEADER, b"0" * 64)],
         "unauthenticated: the record has 2 parcours-signature headers, not one"),
        ([(KEY_ID_HEADER, b"ABC"), (SIGNATURE_HEADER, sign(SECRET, VALUE).encode())],
         "unauthenticated: parcours-key-id is not a key id"),
        ([(KEY_ID_HEADER, KEY_ID.encode()), (SIGNATURE_HEADER, b"\xff" * 64)],
         "unauthenticated: parcours-signature is not 64 hexadecimal digits"),
        ([(KEY_ID_HEADER, KEY_ID.encode()), (SIGNATURE_HEADER, b"00")],
         "unauthenticated: parcours-signature is not 64 hexadecimal digits"),
        # A made-up key id, or a real one with another secret: no lookup needed to refuse.
        (signed_headers("zzzzzzzzzzzz", SECRET, VALUE),
         "unauthenticated: the signature does not match the record's value"),
        (signed_headers(KEY_ID, "A" * 43, VALUE),
         "unauthenticated: the signature does not match the record's value"),
    ],
)
def test_a_record_without_a_valid_signature_is_refused_saying_why(
    headers: list[tuple[str, bytes]] | None, reason: str
) -> None:
    refused = check_signature(headers, VALUE, SERVER)
    assert isinstance(refused, Refused) and refused.reason.startswith(reason), refused


def test_a_tampered_value_or_another_server_secret_does_not_verify() -> None:
    headers = signed_headers(KEY_ID, SECRET, VALUE)
    for value in (VALUE.replace(b"acme", b"acmf"), VALUE + b" ", b"", None):
        assert isinstance(check_signature(headers, value, SERVER), Refused)
    assert isinstance(check_signature(headers, VALUE, b"another server"), Refused)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "unauthenticated: the signing key does not exist"),
        (SigningKey("zzzzzzzzzzzz", "acme", Scope.KAFKA, False),
         "unauthenticated: the signing key does not exist"),
        (SigningKey(KEY_ID, "acme", Scope.KAFKA, True),
         "unauthenticated: the signing key is revoked"),
        (SigningKey(KEY_ID, "acme", Scope.INGEST, False),
         "unauthenticated: the signing key is not a kafka key"),
        (SigningKey(KEY_ID, "acme", Scope.ADMIN, False),
         "unauthenticated: the signing key is not a kafka key"),
    ],
)
def test_only_an_existing_unrevoked_kafka_key_may_sign(key: SigningKey | None, reason: str) -> None:
    assert authorize(Signed(KEY_ID), key) == Refused(reason)


def test_a_kafka_key_acts_for_its_own_tenant_only_and_the_reason_names_neither() -> None:
    assert authorize(Signed(KEY_ID), ACME) == ACME
    assert check_tenant(ACME, "acme") is None
    refused = check_tenant(ACME, "globex")
    assert isinstance(refused, Refused) and refused.reason.startswith("forbidden: ")
    assert "acme" not in refused.reason and "globex" not in refused.reason


def test_the_producer_helper_signs_with_a_kafka_credential_and_refuses_others() -> None:
    signer = RecordSigner(format_key(Scope.KAFKA, KEY_ID, SECRET) + "\n")
    assert signer.key_id == KEY_ID and SECRET not in repr(signer)
    assert check_signature(signer.headers(VALUE), VALUE, SERVER) == Signed(KEY_ID)
    for other in (format_key(Scope.INGEST, KEY_ID, SECRET), "prc_kafka_short", ""):
        with pytest.raises(ValueError, match="not a kafka key"):
            RecordSigner(other)
