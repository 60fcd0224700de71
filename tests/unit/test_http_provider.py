"""The HTTP provider adapter: answers sorted into permanent and transient failures,
payloads built from a send record, and the adapter against the provider sink in-process."""

import time
from datetime import UTC, datetime

import httpx
import pytest

from services.provider_sink.app import http_api
from services.provider_sink.store import Fault, Faults, Inbox
from shared.adapters.delivery_errors import PermanentFailure, TransientFailure
from shared.adapters.http_provider import HttpProvider, failure, provider_id, retry_after_s
from shared.adapters.provider_payloads import PushPayload, SmsPayload, push_payload, sms_payload
from shared.domain.events import Channel
from shared.domain.push_open import valid_open_token
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import EventOrigin, SendRequest

MESSAGE_ID = "9b2f6f7e-8d1c-5c4e-a1e2-0a1b2c3d4e5f"
PUSH_TARGET = {"registrationToken": "tok-1", "application": "shop", "pushPlatform": "fcm"}


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_accepted(status: int) -> None:
    assert failure(status, "") is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
def test_other_4xx_are_permanent_with_the_providers_words(status: int) -> None:
    refused = failure(status, ' {"error": "invalid number"} ')
    assert isinstance(refused, PermanentFailure)
    assert str(refused) == f'provider {status}: {{"error": "invalid number"}}'


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 301])
def test_timeouts_conflicts_rate_limits_5xx_and_the_unexpected_are_transient(
    status: int,
) -> None:
    refused = failure(status, "body with +15551234567")
    assert isinstance(refused, TransientFailure)
    assert str(refused) == f"provider {status}"  # logged on retry: no body, no phone


def test_a_permanent_reason_is_bounded_and_never_empty() -> None:
    assert len(str(failure(400, "x" * 10_000))) == len("provider 400: ") + 200
    assert str(failure(400, "  ")) == "provider 400"


@pytest.mark.parametrize("body,expected", [
    (b'{"id": "sms-1", "status": "accepted"}', "sms-1"), (b'{"id": 7}', "7"),
    (b"{}", None), (b"[1]", None), (b"", None), (b"accepted", None),
])
def test_provider_id_from_the_answer(body: bytes, expected: str | None) -> None:
    assert provider_id(body) == expected


def request(channel: Channel, to: dict[str, str]) -> SendRequest:
    return SendRequest(messageId=MESSAGE_ID, tenant="default",
                       origin=EventOrigin(eventId="EVTx", pKey="k1"),
                       channel=channel, to=to, ctx={}, acceptedAt=time.time())


def sms(text: str = "Your code is 1234") -> RenderedMessage:
    return RenderedMessage(Channel.SMS, {"text": text}, {})


def push() -> RenderedMessage:
    return RenderedMessage(Channel.PUSH, {"title": "Hi Ada", "body": "Parcel on its way"},
                           {"orderId": "42"})


def test_sms_payload() -> None:
    payload = sms_payload(request(Channel.SMS, {"mobilePhone": "+15551234567"}), sms())
    assert payload.model_dump() == {"to": "+15551234567", "text": "Your code is 1234",
                                    "messageId": MESSAGE_ID, "senderId": None,
                                    "encoding": "gsm7", "segments": 1}


def test_an_sms_payload_names_the_sender_and_counts_ucs2_segments() -> None:
    payload = sms_payload(request(Channel.SMS, {"mobilePhone": "+15551234567"}),
                          sms("Ça coûte 5€ " * 7), "Shop")
    assert (payload.senderId, payload.encoding, payload.segments) == ("Shop", "ucs2", 2)


def test_push_payload() -> None:
    payload = push_payload(request(Channel.PUSH, PUSH_TARGET), push())
    assert payload.model_dump() == {
        "token": "tok-1", "application": "shop", "platform": "fcm", "title": "Hi Ada",
        "body": "Parcel on its way", "data": {"orderId": "42"}, "messageId": MESSAGE_ID,
    }


def test_a_push_payload_carries_its_open_token() -> None:
    sent = request(Channel.PUSH, PUSH_TARGET)
    payload = push_payload(sent, push(), "secret")
    assert payload.data["orderId"] == "42"
    assert valid_open_token("secret", sent.tenant, MESSAGE_ID, payload.data["openToken"])


@pytest.mark.parametrize("channel,to,reason", [
    (Channel.SMS, {"email": "a@b.c"}, "the sms target has no mobilePhone"),
    (Channel.SMS, {"mobilePhone": ""}, "not a valid SmsPayload: to"),
    (Channel.PUSH, {**PUSH_TARGET, "pushPlatform": "wns"}, "not a valid PushPayload: platform"),
    (Channel.PUSH, {"registrationToken": "t", "pushPlatform": "fcm"},
     "the push target has no application"),
])
def test_an_unusable_target_is_a_permanent_failure(
    channel: Channel, to: dict[str, str], reason: str
) -> None:
    build = sms_payload if channel is Channel.SMS else push_payload
    with pytest.raises(PermanentFailure, match=reason):
        build(request(channel, to), sms() if channel is Channel.SMS else push())


# --- the adapter against the provider sink, in-process ------------------------------------

@pytest.fixture
def sink() -> tuple[Inbox, Faults, httpx.ASGITransport]:
    inbox, faults = Inbox(), Faults()
    return inbox, faults, httpx.ASGITransport(app=http_api(inbox, faults))


SMS = SmsPayload(to="+15551234567", text="hello", messageId=MESSAGE_ID)


async def test_accepted_once_per_idempotency_key(
    sink: tuple[Inbox, Faults, httpx.ASGITransport],
) -> None:
    inbox, _faults, transport = sink
    provider = HttpProvider("http://sink/sms", 5, transport=transport)
    first = await provider.send(SMS, MESSAGE_ID)
    again = await provider.send(SMS, MESSAGE_ID)  # a resend after a crash
    await provider.close()
    assert first and first == again
    [received] = inbox.list("sms", "+15551234567")
    assert received["payload"] == SMS.model_dump() and inbox.duplicates() == {}


async def test_a_key_reused_for_another_payload_is_refused(
    sink: tuple[Inbox, Faults, httpx.ASGITransport],
) -> None:
    _inbox, _faults, transport = sink
    provider = HttpProvider("http://sink/sms", 5, transport=transport)
    await provider.send(SMS, MESSAGE_ID)
    with pytest.raises(PermanentFailure, match="provider 422"):
        await provider.send(SMS.model_copy(update={"text": "other"}), MESSAGE_ID)


async def test_injected_failures_map_to_the_split_and_are_not_remembered(
    sink: tuple[Inbox, Faults, httpx.ASGITransport],
) -> None:
    inbox, faults, transport = sink
    provider = HttpProvider("http://sink/sms", 5, transport=transport)
    faults.arm(None, None, Fault(503, 1))
    with pytest.raises(TransientFailure, match="provider 503"):
        await provider.send(SMS, MESSAGE_ID)
    assert await provider.send(SMS, MESSAGE_ID)  # the retry goes through
    faults.arm(None, None, Fault(400, 1))
    other = SMS.model_copy(update={"messageId": "other"})
    with pytest.raises(PermanentFailure, match=r"provider 400: .*injected failure 400"):
        await provider.send(other, "other")
    assert len(inbox.list("sms")) == 1


async def test_a_payload_the_provider_cannot_read_is_permanent(
    sink: tuple[Inbox, Faults, httpx.ASGITransport],
) -> None:
    _inbox, _faults, transport = sink
    provider = HttpProvider("http://sink/push", 5, transport=transport)
    with pytest.raises(PermanentFailure, match="provider 422"):
        await provider.send(SMS, MESSAGE_ID)  # an SMS body on the push endpoint


@pytest.mark.parametrize("error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
async def test_connection_errors_and_timeouts_are_transient(error: httpx.HTTPError) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    provider = HttpProvider("http://nowhere/sms", 5, transport=httpx.MockTransport(fail))
    with pytest.raises(TransientFailure, match=f"provider connection: {type(error).__name__}"):
        await provider.send(SMS, MESSAGE_ID)


async def test_every_request_carries_the_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"id": "p-1"})

    provider = HttpProvider("http://p/push", 5, transport=httpx.MockTransport(answer))
    payload = PushPayload(token="t", application="a", platform="apns", title="", body="",
                          messageId=MESSAGE_ID)
    assert await provider.send(payload, MESSAGE_ID) == "p-1"
    [sent] = seen
    assert sent.headers["idempotency-key"] == MESSAGE_ID
    assert sent.headers["content-type"] == "application/json"
    assert PushPayload.model_validate_json(sent.content) == payload


NOW = datetime(2026, 12, 3, 22, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("header", "seconds"), [
    ("4", 4.0), (" 120 ", 120.0), ("86400", 3600.0),  # at most an hour
    ("Thu, 03 Dec 2026 22:00:30 GMT", 30.0), ("Thu, 03 Dec 2026 21:59:00 GMT", 0.0),
    (None, None), ("", None), ("soon", None), ("-5", None),
])
def test_retry_after_is_read_as_seconds_or_a_date(header: str | None,
                                                   seconds: float | None) -> None:
    assert retry_after_s(header, NOW) == seconds


async def test_a_429_carries_how_long_the_provider_asks_us_to_wait() -> None:
    def throttled(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "7"}, json={"detail": "slow down"})

    provider = HttpProvider("http://provider.test/sms", 5,
                            transport=httpx.MockTransport(throttled))
    with pytest.raises(TransientFailure) as refused:
        await provider.send(SMS, MESSAGE_ID)
    await provider.close()
    assert refused.value.retry_after_s == 7.0
