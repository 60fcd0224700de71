"""The pure parts of parcours.profiles.v1: keys, what is signed, upserts read and checked."""

from __future__ import annotations

from pydantic import ValidationError

from shared.domain.profile_records import (
    Bad,
    ProfileRecord,
    parse_key,
    profile_invalid,
    profile_key,
    read_upsert,
    signed_bytes,
)
from shared.domain.profile_schema import ProfileSchema
from shared.domain.profiles import build_write_model
from shared.domain.record_signing import Signed, check_signature, signing_secret
from shared.kafka_profiles import profile_tombstone, profile_upsert
from shared.kafka_signing import RecordSigner
from shared.topics import ALL_TOPICS, PROFILES

SERVER_SECRET = b"server"
KEY_ID = "abcdefghij12"
SIGNER = RecordSigner(f"prc_kafka_{KEY_ID}_{signing_secret(SERVER_SECRET, KEY_ID)}")


def test_the_key_is_tenant_nul_profile_id_and_reads_back() -> None:
    assert profile_key("acme", "cust-42") == b"acme\x00cust-42"
    assert parse_key(b"acme\x00cust-42") == ("acme", "cust-42")


def test_malformed_keys_are_refused_with_the_shape() -> None:
    for key in (None, b"", b"acme", b"\x00cust", b"acme\x00", b"acme\x00bad id",
                b"ac\xffme\x00cust", b"acme\x00" + b"x" * 129):
        outcome = parse_key(key)
        assert isinstance(outcome, Bad), key
        assert outcome.reason.startswith("invalid: key:"), key


def test_an_upsert_signs_its_value_and_a_tombstone_its_key() -> None:
    key, value, headers = profile_upsert(SIGNER, "acme", "cust-42", {"firstName": "Ada"})
    assert value is not None and signed_bytes(key, value) == value
    assert check_signature(headers, value, SERVER_SECRET) == Signed(KEY_ID)
    assert not isinstance(check_signature(headers, key, SERVER_SECRET), Signed)
    key, value, headers = profile_tombstone(SIGNER, "acme", "cust-42")
    assert value is None and signed_bytes(key, value) == key == b"acme\x00cust-42"
    assert check_signature(headers, key, SERVER_SECRET) == Signed(KEY_ID)
    # a tombstone's signature is for its key only: another profile's key does not verify
    assert not isinstance(check_signature(headers, b"acme\x00cust-43", SERVER_SECRET), Signed)


def test_an_upsert_reads_its_envelope_and_body_with_exact_decimals() -> None:
    _, value, _ = profile_upsert(SIGNER, "acme", "cust-42", {"attributes": {"v": "19.90"}},
                                 mode="replace")
    assert value is not None
    read = read_upsert(b'{"tenant":"acme","profileId":"cust-42","profile":{"a":19.90}}',
                       "acme", "cust-42")
    assert not isinstance(read, Bad)
    record, body = read
    assert record.mode == "merge" and str(body["a"]) == "19.90"
    read = read_upsert(value, "acme", "cust-42")
    assert not isinstance(read, Bad) and read[0].mode == "replace"


def test_bad_upserts_say_why() -> None:
    cases = {
        b"not json": "invalid: not JSON",
        b'{"tenant":"acme","profileId":"cust-42"}': "invalid: profile: Field required",
        b'{"tenant":"other","profileId":"cust-42","profile":{}}': "invalid: tenant: does not",
        b'{"tenant":"acme","profileId":"cust-9","profile":{}}': "invalid: profileId: does not",
        b'{"tenant":"acme","profileId":"cust-42","profile":{},"x":1}': "invalid: x:",
        b'{"tenant":"acme","profileId":"cust-42","mode":"upsert","profile":{}}':
            "invalid: mode:",
    }
    for value, reason in cases.items():
        outcome = read_upsert(value, "acme", "cust-42")
        assert isinstance(outcome, Bad) and outcome.reason.startswith(reason), (value, outcome)


def test_a_profile_invalid_against_the_schema_names_the_field() -> None:
    schema = ProfileSchema.model_validate(
        {"attributes": [{"name": "lifetimeValue", "type": "decimal"}], "topics": []})
    model = build_write_model(schema)
    for body, reason in (
        ({"attributes": {"lifetimeValue": "lots"}}, "invalid: profile.attributes.lifetimeValue:"),
        ({"attributes": {"shoeSize": 42}}, "invalid: profile.attributes.shoeSize: not an"),
        ({"timeZone": "Mars/Olympus"}, "invalid: profile.timeZone:"),
    ):
        try:
            model.model_validate(body)
        except ValidationError as error:
            assert profile_invalid(error).startswith(reason), profile_invalid(error)
        else:
            raise AssertionError(f"{body} validated")


def test_the_profiles_topic_is_compacted_and_the_others_retained_7_days() -> None:
    assert PROFILES.config["cleanup.policy"] == "compact"
    assert int(PROFILES.config["delete.retention.ms"]) >= 7 * 24 * 3600 * 1000
    for topic in ALL_TOPICS:
        if topic is not PROFILES:
            assert topic.config == {"cleanup.policy": "delete",
                                    "retention.ms": str(7 * 24 * 3600 * 1000)}, topic.name
    assert "tenant" in ProfileRecord.model_json_schema()["required"]
