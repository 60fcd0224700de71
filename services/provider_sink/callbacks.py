"""What the provider sink posts back, signed like a real provider's webhooks
(``shared.domain.webhook_signature``, secret of provider ``sink``): a delivery receipt for
each SMS it accepts (``delivered``, or ``failed`` with the error asked for by
``POST /receipts``), and the inbound messages a test asks it to deliver (``POST /inbound``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from shared.domain.webhook_signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    parse_secrets,
    sign,
)
from shared.settings import Settings

log = logging.getLogger(__name__)
PROVIDER = "sink"


@dataclass
class Callbacks:
    settings: Settings
    # Numbers whose receipts say failed, with the error: {"+1555…": "30005: Unknown …"}
    failing: dict[str, str] = field(default_factory=dict)
    _client: httpx.AsyncClient = field(
        default_factory=lambda: httpx.AsyncClient(timeout=10.0))
    _pending: set[asyncio.Task[None]] = field(default_factory=set)

    def _signed(self, body: bytes) -> dict[str, str]:
        secrets = parse_secrets(self.settings.provider_webhook_secrets.get_secret_value())
        now = int(time.time())
        return {TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: sign(secrets.get(PROVIDER, ""),
                                                                   now, body),
                "content-type": "application/json"}

    async def post(self, url: str, payload: dict[str, Any]) -> httpx.Response:
        body = orjson.dumps(payload)
        return await self._client.post(url, content=body, headers=self._signed(body))

    def receipt(self, provider_id: str, to: str, message_id: str) -> None:
        """Post the SMS's receipt soon, as a provider does once the carrier reports."""
        url = self.settings.provider_sink_receipts_url
        if not url:
            return
        error = self.failing.get(to)
        payload = {"messageId": message_id, "providerId": provider_id, "to": to,
                   "status": "failed" if error else "delivered", "error": error}
        task = asyncio.create_task(self._deliver(url, payload))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, url: str, payload: dict[str, Any]) -> None:
        for attempt in range(5):  # a gateway restarting: a real provider retries too
            try:
                if (await self.post(url, payload)).status_code < 500:
                    return
            except httpx.HTTPError as error:
                log.debug("receipt not delivered (%s)", error)
            await asyncio.sleep(0.5 * 2 ** attempt)

    def inbound_url(self, tenant: str) -> str:
        base = self.settings.provider_sink_receipts_url.rsplit("/", 1)[0]
        return f"{base}/inbound/{tenant}"

    async def close(self) -> None:
        await self._client.aclose()
