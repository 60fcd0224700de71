"""A connection that has read PostgreSQL's FATAL "terminating connection due to
administrator command" (what every backend sends on a fast shutdown) but not yet the
close of its socket: the next operation fails inside asyncpg with InternalClientError
("cannot switch to state …; another operation (2) is in progress"). The services'
connections raise it as a lost connection instead, one of ``DB_UNAVAILABLE``, so they wait
and reconnect rather than taking it for a bad record (seen in test_zz_postgres_outage:
an event ended routingFailed, a sender's settling task died)."""

from __future__ import annotations

import struct

import asyncpg
import pytest

from shared.adapters.postgres import DB_UNAVAILABLE, connect
from tests.integration.conftest import settings


def _fatal_shutdown() -> bytes:
    body = (b"SFATAL\0VFATAL\0C57P01\0"
            b"Mterminating connection due to administrator command\0\0")
    return b"E" + struct.pack("!i", len(body) + 4) + body


async def _after_fatal(connection: asyncpg.Connection) -> BaseException:
    connection._protocol.data_received(_fatal_shutdown())  # as read from the socket
    with pytest.raises(Exception) as raised:
        async with connection.transaction():
            await connection.fetchval("SELECT 1")
    return raised.value


async def test_asyncpg_alone_raises_an_error_no_service_retries() -> None:
    error = await _after_fatal(await asyncpg.connect(settings.pg_dsn))
    assert isinstance(error, asyncpg.exceptions.InternalClientError)
    assert not isinstance(error, DB_UNAVAILABLE)


@pytest.mark.parametrize("operation", ["transaction", "fetch", "executemany"])
async def test_a_service_connection_raises_it_as_a_lost_connection(operation: str) -> None:
    connection = await connect(settings.pg_dsn)
    connection._protocol.data_received(_fatal_shutdown())
    with pytest.raises(DB_UNAVAILABLE):
        if operation == "transaction":
            async with connection.transaction():
                pass
        elif operation == "fetch":
            await connection.fetch("SELECT $1::int", 1)
        else:
            await connection.executemany("SELECT $1::int", [(1,), (2,)])
    assert connection.is_closed()  # so ensure_db opens a new one
