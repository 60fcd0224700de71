"""A tenant of a console test's own, with its admin and ingest keys and clients."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import asyncpg
import httpx
import pytest

from shared.adapters.key_store import create_key, create_tenant
from shared.domain.api_keys import Scope
from tests.integration.browser import CONSOLE
from tests.integration.conftest import ADMIN


@dataclass
class ConsoleTenant:
    name: str
    admin_key: str
    ingest_key: str
    admin: httpx.AsyncClient  # the admin API with the tenant's admin key


@pytest.fixture(scope="module")
async def console_tenant(pool: asyncpg.Pool) -> AsyncIterator[ConsoleTenant]:
    name = f"console-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, name, f"Console test {name[-8:]}")
        admin_key = await create_key(connection, name, Scope.ADMIN, "console tests")
        ingest_key = await create_key(connection, name, Scope.INGEST, "console tests")
    async with httpx.AsyncClient(base_url=ADMIN, timeout=30, headers={
            "authorization": f"Bearer {admin_key}"}) as admin:
        yield ConsoleTenant(name, admin_key, ingest_key, admin)


def console_client() -> httpx.AsyncClient:
    """The console as a browser without JavaScript: cookies kept, redirects not followed."""
    return httpx.AsyncClient(base_url=CONSOLE, timeout=30, follow_redirects=False)


def demo_journey() -> ModuleType:
    """deploy/local/demo_journey.py (not a package): the seed journey as `make demo` makes
    it, for the console's browser tests to author the same."""
    path = Path(__file__).resolve().parents[2] / "deploy" / "local" / "demo_journey.py"
    spec = importlib.util.spec_from_file_location("demo_journey", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
