"""Where a Docker engine exists, check the project against the official images that
docker-compose.yml uses (testcontainers). Skipped cleanly where there is none, as on
our CI machines, which run the same checks on the locally provisioned services."""

import asyncio

import pytest

from shared.adapters.postgres import MIGRATIONS_DIR, apply_migrations


def docker_engine_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not docker_engine_available(), reason="no Docker engine: testcontainers tests skipped"
)


def test_migrations_apply_once_on_the_official_postgres_15_image() -> None:
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:15", driver=None) as postgres:
        dsn = postgres.get_connection_url()
        every = sorted(p.stem for p in MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql"))
        assert asyncio.run(apply_migrations(dsn)) == every
        assert asyncio.run(apply_migrations(dsn)) == []
