"""Reading a tenant's delivery rules (tables of migration 013), cached per tenant.

The admin API writes them (``rule_admin_store``); every service that decides or sends
reads them through ``TenantRulesCache``: ``ttl_s`` bounds how long a change takes to apply.
"""

from __future__ import annotations

import time

import asyncpg

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


class TenantRulesCache:
    """At most ``MAX_TENANTS`` tenants, each for ``ttl_s``."""

    MAX_TENANTS = 1000

    def __init__(self, pool: asyncpg.Pool, ttl_s: float) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._entries: BoundedDict[str, tuple[float, TenantRules]] = BoundedDict(
            self.MAX_TENANTS)

    def forget(self, tenant: str) -> None:
        self._entries.pop(tenant, None)

    async def get(self, tenant: str) -> TenantRules:
        now = time.monotonic()
        hit = self._entries.get(tenant)
        if hit is not None and now - hit[0] < self._ttl_s:
            return hit[1]
        rules = await load_tenant_rules(self._pool, tenant)
        self._entries[tenant] = (now, rules)
        return rules
