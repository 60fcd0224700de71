"""Reading a tenant's delivery rules (tables of migration 013), cached per tenant.

The admin API writes them (``rule_admin_store``); every service that decides or sends
reads them through ``TenantRulesCache``: ``ttl_s`` bounds how long a change takes to apply,
and a cache that ``listen``s drops a tenant's rules as soon as they change (migration 014).
"""

from __future__ import annotations

import asyncpg

from shared.adapters.tenant_cache import TenantCache
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


class TenantRulesCache(TenantCache[TenantRules]):
    """A tenant's rules, dropped at once when PostgreSQL announces a change to them."""

    def __init__(self, pool: asyncpg.Pool, ttl_s: float) -> None:
        super().__init__(pool, ttl_s, CHANNEL)

    async def _load(self, tenant: str, previous: TenantRules | None) -> TenantRules:
        return await load_tenant_rules(self._pool, tenant)
