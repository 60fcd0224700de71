"""PostgreSQL connections and the numbered migrations applied at start."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import asyncpg
import orjson

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


async def _init_connection(connection: asyncpg.Connection) -> None:
    # jsonb in and out as Python objects, encoded with orjson.
    await connection.set_type_codec(
        "jsonb",
        encoder=lambda value: orjson.dumps(value).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


async def connect(dsn: str) -> asyncpg.Connection:
    connection = await asyncpg.connect(dsn, connection_class=Connection)
    await _init_connection(connection)
    return connection


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
