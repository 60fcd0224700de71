"""Reading a tenant's delivery rules (tables of migration 013), cached per tenant.

The admin API writes them (``rule_admin_store``); every service that decides or sends
reads them through ``TenantRulesCache``: ``ttl_s`` bounds how long a change takes to apply,
and a cache that ``listen``s drops a tenant's rules as soon as they change (migration 014).
"""

from __future__ import annotations

import time

import asyncpg

from shared.adapters.postgres import Listener
from shared.bounded import BoundedDict
from shared.domain.delivery_rules.tenant import RULE, RuleSettings, TenantRules, Typology


async def load_tenant_rules(connection: asyncpg.Connection | asyncpg.Pool, tenant: str
                            ) -> TenantRules:
    rules = await connection.fetch(
        "SELECT rule_id, definition FROM delivery_rules WHERE tenant_id = $1", tenant)
    typologies = await connection.fetch(
        "SELECT typology_id, name, rule_ids, is_default FROM typologies WHERE tenant_id = $1",
        tenant)
    settings = await connection.fetchval(
        "SELECT settings FROM rule_settings WHERE tenant_id = $1", tenant)
    return TenantRules(
        rules={r["rule_id"]: RULE.validate_python(r["definition"]) for r in rules},
        typologies={t["typology_id"]: Typology(t["typology_id"], t["name"],
                                               tuple(t["rule_ids"]), t["is_default"])
                    for t in typologies},
        settings=RuleSettings.model_validate(settings or {}))


CHANNEL = "parcours_rules"  # see migration 014


class TenantRulesCache:
    """At most ``MAX_TENANTS`` tenants, each for ``ttl_s``, or until PostgreSQL announces
    a change to them (``listen``); the TTL is the safety net if that connection is lost."""

    MAX_TENANTS = 1000

    def __init__(self, pool: asyncpg.Pool, ttl_s: float) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._entries: BoundedDict[str, tuple[float, TenantRules]] = BoundedDict(
            self.MAX_TENANTS)
        self._listener: Listener | None = None
        self._changes = 0  # announcements heard: a read begun before one is not kept

    async def listen(self, dsn: str) -> None:
        """Listen for changes, again after PostgreSQL comes back (``Listener``)."""
        self._listener = await Listener.open(dsn, CHANNEL, self._changed, self._missed)

    async def _missed(self) -> None:
        self._changes += 1
        self._entries.clear()

    def _changed(self, _connection: object, _pid: int, _channel: str, tenant: str) -> None:
        self._changes += 1
        self.forget(tenant)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()

    def forget(self, tenant: str) -> None:
        self._entries.pop(tenant, None)

    async def get(self, tenant: str) -> TenantRules:
        now = time.monotonic()
        hit = self._entries.get(tenant)
        if hit is not None and now - hit[0] < self._ttl_s:
            return hit[1]
        changes = self._changes
        rules = await load_tenant_rules(self._pool, tenant)
        if changes == self._changes:
            self._entries[tenant] = (now, rules)
        return rules
