"""PostgreSQL connections and the numbered migrations applied at start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

if TYPE_CHECKING:
    from shared.settings import Settings

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
log = logging.getLogger(__name__)

# Errors that mean "the database is not reachable right now": wait and retry, never drop.
DB_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)


class Connection(asyncpg.Connection):  # type: ignore[misc]
    """asyncpg's connection, dropped when its protocol state breaks. When PostgreSQL
    stops (a fast shutdown) every backend sends a FATAL error and closes its socket; an
    operation started between asyncpg reading the error and noticing the close fails with
    ``InternalClientError: cannot switch to state …; another operation (2) is in
    progress``, an error the services took for a bad record (an event ended
    ``routingFailed``, a sender's settling task died and left its events ``processing``).
    That error, on a connection asyncpg has marked closed, is raised as a lost connection
    (``DB_UNAVAILABLE``), so the caller waits, reconnects and retries; on an open one it
    is a client error of its own (a codec, say) and stays what it is."""

    def _lost(self, error: Exception) -> None:
        if self.is_closed():
            raise ConnectionAbortedError(f"the connection broke: {error}") from error

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute(*args, **kwargs)
        except asyncpg.exceptions.InternalClientError as error:
            self._lost(error)
            raise

    async def _execute(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._execute(*args, **kwargs)
        except asyncpg.exceptions.InternalClientError as error:
            self._lost(error)
            raise

    async def _executemany(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._executemany(*args, **kwargs)
        except asyncpg.exceptions.InternalClientError as error:
            self._lost(error)
            raise


Notified = Callable[[Any, int, str, str], None]  # connection, pid, channel, payload


class Listener:
    """``LISTEN channel`` for the life of a service. The connection lost (PostgreSQL
    restarted, the backend killed): it connects again, with backoff, and once it listens
    again calls ``missed`` — what was announced meanwhile never arrives, so the cache
    forgets what it holds. Without it a cache that lost its listener fell back to its TTL
    until the service restarted."""

    def __init__(self, dsn: str, channel: str, notified: Notified,
                 missed: Callable[[], Awaitable[None]]) -> None:
        self._dsn = dsn
        self._channel = channel
        self._notified = notified
        self._missed = missed
        self._connection: asyncpg.Connection | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closing = False

    @classmethod
    async def open(cls, dsn: str, channel: str, notified: Notified,
                   missed: Callable[[], Awaitable[None]]) -> Listener:
        listener = cls(dsn, channel, notified, missed)
        await listener._listen()
        return listener

    @property
    def connection(self) -> asyncpg.Connection | None:
        return self._connection

    async def _listen(self) -> None:
        # named for pg_stat_activity: who listens to what (test_zz_postgres_outage)
        connection = await asyncpg.connect(self._dsn, server_settings={
            "application_name": f"parcours-listen {os.getpid()} {self._channel}"})
        try:
            await connection.add_listener(self._channel, self._notified)
        except BaseException:
            connection.terminate()
            raise
        connection.add_termination_listener(self._lost)
        self._connection = connection

    def _lost(self, _connection: object) -> None:
        if self._closing or (self._reconnecting is not None
                             and not self._reconnecting.done()):
            return
        self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 0.1
        while not self._closing:
            try:
                if self._connection is None or self._connection.is_closed():
                    await self._listen()
                await self._missed()
                log.info("listening on %s again", self._channel)
                return
            except DB_UNAVAILABLE as error:
                log.warning("listening on %s failed (%s); retrying in %.1fs",
                            self._channel, error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        self._closing = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        if self._connection is not None and not self._connection.is_closed():
            await self._connection.close()


async def _init_connection(connection: asyncpg.Connection) -> None:
    # jsonb and json (reactions.record, migration 051) in and out as Python objects,
    # encoded with orjson.
    for json_type in ("jsonb", "json"):
        await connection.set_type_codec(
            json_type,
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


# The hot path's statements (the processor's, the senders') go to partitioned tables with
# arrays of a batch's rows. PostgreSQL planned them afresh at every execution: a custom
# plan prunes partitions, so it always looked cheaper than the generic one, and planning
# was 0.35-0.84 ms of each statement's bind (statement log, one event at a time). Their
# generic plans prune at execution (run-time pruning) and take 0.02-0.04 ms to bind.
# README, Benchmarks: "Where the time goes".
GENERIC_PLANS = {"plan_cache_mode": "force_generic_plan"}


async def connect(dsn: str, *, generic_plans: bool = False) -> asyncpg.Connection:
    """``generic_plans``: for a connection running the hot path's prepared statements."""
    connection = await asyncpg.connect(dsn, connection_class=Connection,
                                       server_settings=GENERIC_PLANS if generic_plans else None)
    await _init_connection(connection)
    return connection


# For a statement whose joins must be index look-ups whatever the statistics say (they
# can be stale, or say a table is small while it grows): run in its transaction first.
PLAN_BY_INDEX = ("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off;"
                 " SET LOCAL enable_seqscan = off")


class OwnConnection:
    """A connection of one loop's own (a batcher, a relay: one statement or transaction
    at a time): no pool to go through and no reset query on release; opened again when
    it was lost."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._connection: asyncpg.Connection | None = None

    async def __call__(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            self._connection = await connect(self._dsn)
        return self._connection

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


async def connect_hot_path(settings: Settings) -> asyncpg.Connection:
    """A connection of the processor's or a sender's hot path: generic plans unless
    ``PARCOURS_PG_GENERIC_PLANS=0``."""
    return await connect(settings.pg_dsn, generic_plans=settings.pg_generic_plans)


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection,
        connection_class=Connection,
    )
    assert pool is not None
    return pool


async def apply_migrations(dsn: str) -> list[str]:
    """Apply every ``NNN_*.sql`` not yet applied, each in its own transaction, in order."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        # Two services starting together must not apply the same file twice.
        await connection.execute("SELECT pg_advisory_lock(7061726)")
        rows = await connection.fetch("SELECT version FROM schema_migrations")
        done = {row["version"] for row in rows}
        applied = []
        for path in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql")):
            if path.stem in done:
                continue
            async with connection.transaction():
                await connection.execute(path.read_text())
                await connection.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)", path.stem
                )
            applied.append(path.stem)
        return applied
    finally:
        await connection.close()


def main() -> None:
    from shared.settings import get_settings

    applied = asyncio.run(apply_migrations(get_settings().pg_dsn))
    print(f"migrations applied: {', '.join(applied) or 'none (up to date)'}")


if __name__ == "__main__":
    main()
