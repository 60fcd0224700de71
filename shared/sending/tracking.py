"""Tracked links at send time: an HTML email's http(s) links go through the tracking
service's signed click URLs and its open pixel is added; what a pixel or click needs to
record its reaction (the links by index, profile or address, origin) is stored before
the message is handed over, so the recipient can never click before it is there.

Stored by group commit: the messages of a delivery batch reach ``tracked`` in one turn of
the event loop (rendering does not wait), and go to PostgreSQL in one statement and one
commit; those arriving while it runs go together in the next. One insert and one commit
per message, through the sender's pool of two connections, made the links' storage the
sender's bottleneck (P4 at 200/s: about 180 messages/s handed over, a growing backlog).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import lru_cache

import asyncpg

from shared.adapters import tracking_store
from shared.adapters.postgres import connect_hot_path
from shared.adapters.tracking_store import TrackedMessage
from shared.domain.delivery_rules.addresses import recipient_address
from shared.domain.events import Channel
from shared.domain.link_rewriting import rewrite_links
from shared.domain.rendering import RenderedMessage
from shared.domain.routing import SendRequest
from shared.domain.tracking_links import Keyring, click_urls, open_url, parse_keyring
from shared.settings import Settings


@lru_cache(maxsize=4)
def _keyring(keys: str) -> Keyring:
    return parse_keyring(keys)


class _GroupCommit:
    """Messages to store, written together; each caller waits for its own statement and
    gets its error (the caller retries, as it would a statement of its own).

    On a connection of its own, opened once (again if it breaks), not one acquired from
    the sender's pool per statement: a pooled connection is reset when it goes back, one
    more round trip that the messages waited for before their hand-over."""

    def __init__(self, opener: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self._opener = opener
        self._connection: asyncpg.Connection | None = None
        self._waiting: list[tuple[TrackedMessage, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def _open(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            self._connection = await self._opener()
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.terminate()

    async def remember(self, message: TrackedMessage) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((message, done))
        if self._writer is None or self._writer.done():
            # Runs in the loop's next turn, once the batch's other messages are here.
            self._writer = asyncio.create_task(self._write())
        await done

    async def _write(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                await tracking_store.remember(await self._open(), [m for m, _ in group])
            except asyncio.CancelledError:
                for _, done in group:
                    done.cancel()
                raise
            except Exception as error:
                for _, done in group:
                    if not done.done():
                        done.set_exception(error)
            else:
                for _, done in group:
                    if not done.done():
                        done.set_result(None)


_groups: dict[asyncpg.Pool, _GroupCommit] = {}  # a sender has one pool for life


def _opener(_pool: asyncpg.Pool, settings: Settings
            ) -> Callable[[], Awaitable[asyncpg.Connection]]:
    """How a sender's group opens its connection (the unit tests' fake gives its pool)."""
    return lambda: connect_hot_path(settings)


def _group(pool: asyncpg.Pool, settings: Settings) -> _GroupCommit:
    for closed in [p for p in _groups if p.is_closing()]:
        _groups.pop(closed).close()
    if pool not in _groups:
        _groups[pool] = _GroupCommit(_opener(pool, settings))
    return _groups[pool]


async def tracked(pool: asyncpg.Pool, settings: Settings, request: SendRequest,
                  rendered: RenderedMessage) -> RenderedMessage:
    """The message with tracked links, stored; unchanged when tracking is off or it has
    no HTML part."""
    html = rendered.parts.get("html")
    if not settings.tracking_enabled or rendered.channel is not Channel.EMAIL or not html:
        return rendered
    keys = _keyring(settings.tracking_keys.get_secret_value())
    base, tenant, message = settings.tracking_base_url, request.tenant, request.messageId
    rewritten = rewrite_links(html, click_urls(base, keys, tenant, message),
                              open_url(base, keys, tenant, message), rendered.html)
    address = None if request.profileId else recipient_address(request.channel.value,
                                                               request.to)
    await _group(pool, settings).remember(TrackedMessage(
        tenant, message, request.channel.value, request.profileId, address,
        request.origin.model_dump(), rewritten.links))
    return RenderedMessage(rendered.channel, {**rendered.parts, "html": rewritten.html},
                           rendered.data)
