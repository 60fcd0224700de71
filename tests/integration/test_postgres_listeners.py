"""The caches' LISTEN connections survive losing their connection (PostgreSQL restarted,
the backend killed): they listen again by themselves and forget what they held, since
what was announced meanwhile never arrived. Before, a cache that lost its listener fell
back to its TTL until the service restarted (seen after test_zz_postgres_outage: no
service started before the outage listened any more)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from fastapi import HTTPException

from shared.adapters.key_store import create_key, create_tenant, revoke_key
from shared.adapters.postgres import Listener
from shared.adapters.profile_schema_store import ProfileSchemaCache, save_schema
from shared.api_auth import Authenticator
from shared.domain.api_keys import Scope, parse_key
from shared.domain.profile_schema import ProfileSchema
from tests.integration.conftest import eventually, settings


async def _kill(pool: asyncpg.Pool, listener: Listener) -> int:
    """Terminate the listener's backend, as a restart of PostgreSQL does; its pid."""
    assert listener.connection is not None
    pid: int = listener.connection.get_server_pid()
    assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)
    return pid


async def _listening_again(listener: Listener, old_pid: int,
                           missed: Callable[[], Awaitable[bool]] | None = None) -> None:
    async def again() -> bool:
        connection = listener.connection
        return (connection is not None and not connection.is_closed()
                and connection.get_server_pid() != old_pid
                and (missed is None or await missed()))

    await eventually(again, "the listener connected again")


async def test_a_listener_listens_again_and_says_what_it_missed(pool: asyncpg.Pool) -> None:
    channel = f"parcours_test_{uuid.uuid4().hex[:8]}"
    heard: list[str] = []
    missed: list[int] = []

    def notified(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
        heard.append(payload)

    async def forgot() -> None:
        missed.append(1)

    def heard_of(payload: str) -> Callable[[], Awaitable[bool]]:
        async def probe() -> bool:
            return payload in heard
        return probe

    listener = await Listener.open(settings.pg_dsn, channel, notified, forgot)
    try:
        await pool.execute(f"NOTIFY {channel}, 'before'")
        await eventually(heard_of("before"), "the first notification")
        old = await _kill(pool, listener)

        async def said_missed() -> bool:
            return missed == [1]

        await _listening_again(listener, old, said_missed)
        await pool.execute(f"NOTIFY {channel}, 'after'")
        await eventually(heard_of("after"), "a notification after the reconnection")
    finally:
        await listener.close()
    assert listener.connection is not None and listener.connection.is_closed()


async def test_a_schema_cache_sees_changes_at_once_after_losing_its_listener(
    pool: asyncpg.Pool
) -> None:
    tenant = f"listen-{uuid.uuid4().hex[:8]}"
    first = ProfileSchema.model_validate({"attributes": [{"name": "a", "type": "string"}]})
    second = ProfileSchema.model_validate({"attributes": [{"name": "b", "type": "string"}]})
    async with pool.acquire() as connection:
        await create_tenant(connection, tenant, "listener test")
        await save_schema(connection, tenant, first)
    cache = ProfileSchemaCache(pool, ttl_s=3600)  # only a notification can refresh it
    await cache.listen(settings.pg_dsn)
    try:
        assert (await cache.get(tenant)).schema == first
        assert cache._listener is not None
        await _listening_again(cache._listener, await _kill(pool, cache._listener))
        async with pool.acquire() as connection:
            await save_schema(connection, tenant, second)

        async def changed() -> bool:
            return (await cache.get(tenant)).schema == second

        await eventually(changed, "the new schema, announced after the reconnection")
    finally:
        await cache.close()


async def test_an_authenticator_sees_a_revocation_at_once_after_losing_its_listener(
    pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as connection:
        key = await create_key(connection, "default", Scope.INGEST, "tests")
    authenticator = Authenticator(pool, ttl_s=3600)
    await authenticator.start(settings.pg_dsn)
    try:
        assert (await authenticator.authenticate(f"Bearer {key}", Scope.INGEST)).tenant
        assert authenticator._listener is not None
        await _listening_again(authenticator._listener,
                               await _kill(pool, authenticator._listener))
        async with pool.acquire() as connection:
            parsed = parse_key(key)
            assert parsed is not None and await revoke_key(connection, parsed.key_id)

        async def refused() -> bool:
            try:
                await authenticator.authenticate(f"Bearer {key}", Scope.INGEST)
            except HTTPException as error:
                return error.status_code == 401
            return False

        await eventually(refused, "the revocation, announced after the reconnection")
    finally:
        await authenticator.close()
