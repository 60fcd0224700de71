"""The pure parts of what SMS and push providers and apps report back: webhook signatures,
inbound keywords, SMS encoding and segments, push open tokens."""

import pytest

from shared.domain.push_open import device_unregistered, open_token, valid_open_token
from shared.domain.sms_encoding import sms_shape
from shared.domain.sms_keywords import Keyword, keyword
from shared.domain.sms_receipts import InboundSms, SmsStatus, address_failure, inbound_message_id
from shared.domain.webhook_signature import Refusal, Verified, parse_secrets, sign, verify

SECRET, NOW, WINDOW = "s3cret", 1_800_000_000, 300.0
BODY = b'{"messageId":"m","status":"delivered"}'


def test_a_signed_body_verifies_within_the_window() -> None:
    signature = sign(SECRET, NOW, BODY)
    assert signature.startswith("v1=") and len(signature) == 3 + 64
    assert verify(SECRET, str(NOW), signature, BODY, NOW + 299, WINDOW) == Verified(
        signature, NOW)


@pytest.mark.parametrize("timestamp, signature, body, now, refusal", [
    (None, sign(SECRET, NOW, BODY), BODY, NOW, Refusal.MISSING),
    (str(NOW), None, BODY, NOW, Refusal.MISSING),
    ("soon", sign(SECRET, NOW, BODY), BODY, NOW, Refusal.MISSING),
    (str(NOW), sign(SECRET, NOW, BODY), BODY, NOW + 301, Refusal.STALE),
    (str(NOW), sign(SECRET, NOW, BODY), BODY, NOW - 301, Refusal.STALE),  # from the future
    (str(NOW), sign(SECRET, NOW, BODY), BODY + b" ", NOW, Refusal.FORGED),  # body altered
    (str(NOW + 1), sign(SECRET, NOW, BODY), BODY, NOW, Refusal.FORGED),  # timestamp moved
    (str(NOW), sign("other", NOW, BODY), BODY, NOW, Refusal.FORGED),  # another secret
    (str(NOW), "v1=" + "0" * 64, BODY, NOW, Refusal.FORGED),
])
def test_unsigned_stale_or_forged_calls_are_refused(
    timestamp: str | None, signature: str | None, body: bytes, now: int, refusal: Refusal
) -> None:
    assert verify(SECRET, timestamp, signature, body, now, WINDOW) == refusal


def test_no_secret_configured_refuses_everything() -> None:
    assert verify("", str(NOW), sign("", NOW, BODY), BODY, NOW, WINDOW) == Refusal.MISSING


def test_one_of_several_signatures_may_match_during_a_rotation() -> None:
    both = f"{sign('old', NOW, BODY)}, {sign(SECRET, NOW, BODY)}"
    assert isinstance(verify(SECRET, str(NOW), both, BODY, NOW, WINDOW), Verified)


def test_secrets_setting() -> None:
    assert parse_secrets("sink:abc, twilio:x:y,") == {"sink": "abc", "twilio": "x:y"}


@pytest.mark.parametrize("text, expected", [
    ("STOP", Keyword.STOP), ("stop", Keyword.STOP), ("  Stop. ", Keyword.STOP),
    ("s t o p", Keyword.STOP), ("StopAll", Keyword.STOP), ("unsubscribe", Keyword.STOP),
    ("CANCEL", Keyword.STOP), ("end", Keyword.STOP), ("Quit", Keyword.STOP),
    ("ARRÊT", Keyword.STOP), ("arret", Keyword.STOP), ("Arrêt !", Keyword.STOP),
    ("opt-out", Keyword.STOP), ("HELP", Keyword.HELP), ("help?", Keyword.HELP),
    ("Aide", Keyword.HELP), ("START", Keyword.START), ("unstop", Keyword.START),
    ("stop sending me these", None), ("please stop", None), ("yes", None), ("", None),
    ("STOPPED", None), ("hello", None),
])
def test_inbound_keywords(text: str, expected: Keyword | None) -> None:
    assert keyword(text) is expected


@pytest.mark.parametrize("text, encoding, units, segments", [
    ("", "gsm7", 0, 0),
    ("Hello", "gsm7", 5, 1),
    ("a" * 160, "gsm7", 160, 1),
    ("a" * 161, "gsm7", 161, 2),
    ("a" * 306, "gsm7", 306, 2),
    ("a" * 307, "gsm7", 307, 3),
    ("€" * 80, "gsm7", 160, 1),  # extension characters cost two septets
    ("a" + "€" * 80, "gsm7", 161, 2),
    ("^{}[]~|\\", "gsm7", 16, 1),
    ("a" * 152 + "€" + "a" * 10, "gsm7", 164, 2),  # the escape pair not split: 152+2 > 153
    ("a" * 158 + "€", "gsm7", 160, 1),
    ("a" * 159 + "€", "gsm7", 161, 2),
    ("é à ñ Ü ß Ø Δ", "gsm7", 13, 1),  # in the basic table
    ("ç", "ucs2", 1, 1),  # only Ç (capital) is GSM-7
    ("Ça coûte 5€", "ucs2", 11, 1),  # û is not GSM-7
    ("x" * 70 + "ê", "ucs2", 71, 2),
    ("ê" * 70, "ucs2", 70, 1),
    ("ê" * 134, "ucs2", 134, 2),
    ("ê" * 135, "ucs2", 135, 3),
    ("👍", "ucs2", 2, 1),  # outside the BMP: a surrogate pair
    ("a" * 66 + "👍" + "a" * 10, "ucs2", 78, 2),  # the pair not split: 66+2 > 67
    ("👍" * 35, "ucs2", 70, 1),
])
def test_encoding_and_segments(text: str, encoding: str, units: int, segments: int) -> None:
    shape = sms_shape(text)
    assert (shape.encoding, shape.units, shape.segments) == (encoding, units, segments)


def test_open_tokens_name_their_tenant_and_message() -> None:
    token = open_token(SECRET, "acme", "m-1")
    assert len(token) == 22 and valid_open_token(SECRET, "acme", "m-1", token)
    assert not valid_open_token(SECRET, "other", "m-1", token)
    assert not valid_open_token(SECRET, "acme", "m-2", token)
    assert not valid_open_token("another", "acme", "m-1", token)
    assert not valid_open_token(SECRET, "acme", "m-1", token[:-1] + "A")


@pytest.mark.parametrize("reason, gone", [
    ('provider 410: {"reason":"Unregistered"}', True),
    ('provider 404: {"error":{"status":"NOT_FOUND","details":[{"errorCode":"UNREGISTERED"}]}}',
     True),
    ('provider 400: {"reason":"BadDeviceToken"}', False),
    ("provider 401: bad credentials", False),
])
def test_which_push_refusals_mean_the_device_is_gone(reason: str, gone: bool) -> None:
    assert device_unregistered(reason) is gone


@pytest.mark.parametrize("error, kind", [
    ("30003: Unreachable destination handset", "soft"),
    ("30005: Unknown destination handset", "hard"),
    ("30006: Landline or unreachable carrier", "hard"),
    ("21211: Invalid 'To' Phone Number", "hard"),
    ("absent subscriber", "soft"),
    ("30007: Carrier violation (message filtered)", None),
    ("", None), (None, None),
])
def test_what_a_failed_receipt_says_about_the_number(error: str | None, kind: str | None
                                                     ) -> None:
    assert address_failure(error) == kind


def test_receipts_and_inbound_messages_parse_the_neutral_contract() -> None:
    status = SmsStatus.model_validate({"messageId": "6f1c7c2e-8d1a-4f51-9a7e-2b3b0e4b1c11",
                                       "status": "delivered", "price": "0.01"})
    assert status.status == "delivered" and status.error is None
    inbound = InboundSms.model_validate({"id": "in-1", "from": "+15550001", "text": "STOP"})
    assert inbound.sender == "+15550001"
    assert inbound_message_id("t", "sink", "in-1") == inbound_message_id("t", "sink", "in-1")
    assert inbound_message_id("t", "sink", "in-1") != inbound_message_id("u", "sink", "in-1")


def test_the_replay_cache_refuses_a_signature_seen_within_the_window_and_stays_bounded(
) -> None:
    from services.gateway.webhook_routes import SeenSignatures

    seen = SeenSignatures(capacity=3)
    assert seen.first_time("a", until=100.0, now=0.0)
    assert not seen.first_time("a", until=100.0, now=50.0)  # a replay
    assert seen.first_time("a", until=250.0, now=101.0)  # its window is over: stale anyway
    for name in "bcd":
        assert seen.first_time(name, until=300.0, now=102.0)
    assert len(seen._until) == 3  # the oldest forgotten first
