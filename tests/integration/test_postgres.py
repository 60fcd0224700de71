"""Migrations are numbered, applied at start, and idempotent."""

from shared.adapters.postgres import apply_migrations
from tests.integration.conftest import settings


async def test_a_second_run_applies_nothing() -> None:
    assert await apply_migrations(settings.pg_dsn) == []
