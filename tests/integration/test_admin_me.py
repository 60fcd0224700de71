"""``GET /admin/v1/me``: who an admin key is (the console's sign-in asks it)."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import ADMIN, TENANT

pytestmark = pytest.mark.integration


async def test_me_names_the_keys_tenant_and_scope(admin: httpx.AsyncClient, admin_key: str):
    answer = await admin.get("/me")
    assert answer.status_code == 200, answer.text
    me = answer.json()
    assert me["tenant"] == TENANT and me["scope"] == "admin" and me["label"] == "tests"
    assert admin_key.startswith(f"prc_admin_{me['keyId']}")
    assert me["tenantName"]


async def test_me_refuses_a_missing_or_ingest_key(ingest_key: str):
    async with httpx.AsyncClient(base_url=ADMIN, timeout=10) as client:
        assert (await client.get("/me")).status_code == 401
        other = await client.get("/me", headers={"authorization": f"Bearer {ingest_key}"})
        assert other.status_code == 403
