"""Erasure and access requests: every store that holds personal data about a profile
registers here, so that one call erases (or exports) all of it.

A store registers at import (``register``) an ``erase(connection, tenant, profile_id)``
that removes or redacts what it holds and returns counts of what it removed, and an
``export`` that returns what it holds. ``erase_profile`` runs them all in one transaction:
either everything goes or nothing does. Stores that find their data through the profile's
addresses run before the profile row goes (``order``: lower first; the profile is last).
The service that erases imports every registering store (the gateway's profile routes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

Erase = Callable[[asyncpg.Connection, str, str], Awaitable[dict[str, int]]]
Export = Callable[[asyncpg.Connection, str, str], Awaitable[dict[str, Any]]]
LAST = 1000  # the order of the profile row itself


@dataclass(frozen=True)
class PersonalData:
    name: str
    erase: Erase
    export: Export
    order: int = 0


_STORES: dict[str, PersonalData] = {}


def register(store: PersonalData) -> None:
    _STORES[store.name] = store  # by name: importing a module twice registers it once


def registered() -> list[PersonalData]:
    return sorted(_STORES.values(), key=lambda s: (s.order, s.name))


async def erase_profile(
    connection: asyncpg.Connection, tenant: str, profile_id: str
) -> dict[str, int]:
    """Erase everything held about the profile, in one transaction; what each store
    removed, by what it counts."""
    removed: dict[str, int] = {}
    async with connection.transaction():
        for store in registered():
            removed |= await store.erase(connection, tenant, profile_id)
    return removed


async def export_profile(
    connection: asyncpg.Connection, tenant: str, profile_id: str
) -> dict[str, Any]:
    """Everything held about the profile, by store, read in one snapshot."""
    exported: dict[str, Any] = {}
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        for store in registered():
            exported |= await store.export(connection, tenant, profile_id)
    return exported
