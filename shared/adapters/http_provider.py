"""Hand one message to an SMS or push provider over HTTP, connections kept open (httpx).

Every request carries ``Idempotency-Key: <messageId>``. The delivery ledger resends a
message whose outcome a crash left unknown (handed over, not yet settled); with the key,
the provider answers the resend as it answered the first request and delivers nothing
twice, which closes the window SMTP leaves open.

Answers are sorted like SMTP replies (``shared.adapters.delivery_errors``): 2xx accepted;
408, 409, 429, 5xx, connection errors and timeouts are transient (retry with backoff);
any other 4xx is permanent. 409 is transient because an idempotency key answers it while
the first request with that key is still being handled: the retry then gets the answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
import orjson
from pydantic import BaseModel

from shared.adapters.delivery_errors import PermanentFailure, TransientFailure
from shared.adapters.provider_fault import ProviderFault

_TRANSIENT_4XX = frozenset({408, 409, 429})
# The permanent refusals that blame the recipient (an invalid number, an unregistered
# token): they quarantine it. 401, 403, 404, 413... blame our credentials, endpoint or
# payload, and must not quarantine every address a misconfiguration touches.
_ADDRESS_4XX = frozenset({400, 410, 422})
_DETAIL_CHARS = 200


def failure(status: int, detail: str) -> PermanentFailure | TransientFailure | None:
    """What an answer means for the message: None when the provider accepted it."""
    if 200 <= status < 300:
        return None
    if 400 <= status < 500 and status not in _TRANSIENT_4XX:
        detail = detail.strip()[:_DETAIL_CHARS]
        return PermanentFailure(f"provider {status}: {detail}" if detail else f"provider {status}",
                                address_fault=status in _ADDRESS_4XX)
    # 5xx, the retryable 4xx and anything unexpected (a redirect is a configuration
    # mistake): keep the message and retry, so fixing the cause delivers it. All but 409
    # (the same key still being handled) say the provider is failing or throttling us:
    # they count against its circuit breaker.
    if status == 409:
        return TransientFailure(f"provider {status}")
    return ProviderFault(f"provider {status}")


MAX_RETRY_AFTER_S = 3600.0  # a longer ask is taken as an hour: the schedule retries then


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (RFC 9110: a number of seconds or an
    HTTP date), at most an hour; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def provider_id(body: bytes) -> str | None:
    """The provider's id for the message, from an answer like ``{"id": "…"}``."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    found = answer.get("id") if isinstance(answer, dict) else None
    return str(found) if found is not None else None


class HttpProvider:
    """One provider endpoint; ``connections`` requests in flight at most, kept alive."""

    def __init__(
        self, url: str, timeout_s: float, connections: int = 16,
        transport: httpx.AsyncBaseTransport | None = None,  # in-process, for unit tests
    ) -> None:
        self._url = url
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=connections,
                                max_keepalive_connections=connections),
            headers={"content-type": "application/json"},
            transport=transport,
        )

    async def send(self, payload: BaseModel, idempotency_key: str) -> str | None:
        """Post one message; returns the provider's id for it, if it gave one."""
        try:
            response = await self._client.post(
                self._url, content=payload.model_dump_json(),
                headers={"idempotency-key": idempotency_key},
            )
        except httpx.TransportError as error:  # connection refused or lost, timeouts
            raise ProviderFault(f"provider connection: {type(error).__name__}") from error
        # The body goes into a permanent failure's reason (the event's status), never into
        # the logs: providers echo phone numbers and tokens.
        refused = failure(response.status_code, response.text)
        if refused is not None:
            if response.status_code in (429, 503):
                refused.retry_after_s = retry_after_s(response.headers.get("retry-after"))
            raise refused
        return provider_id(response.content)

    async def close(self) -> None:
        await self._client.aclose()
