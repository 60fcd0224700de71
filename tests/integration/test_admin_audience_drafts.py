"""An audience's definition counted and previewed without storing it (``POST
/admin/v1/audiences/count`` and ``…/preview``, the console builder's live count), on the
real stack: the seed audience's exact members and decoys, the same answer as the stored
audience's, a 422 naming the place in the tree, nothing stored, an ingestion key refused."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import ADMIN
from tests.integration.test_audiences import SEED, Tenant, create, seed
from tests.integration.test_audiences import tenant as tenant  # the fixture

pytestmark = pytest.mark.integration


async def test_a_draft_counts_and_previews_as_the_stored_audience_does(tenant: Tenant
                                                                      ) -> None:
    await seed(tenant)
    count = await tenant.admin.post("/audiences/count", json={"definition": SEED})
    assert count.status_code == 200, count.text
    assert count.json()["count"] == 3 and count.json()["countedAt"]
    preview = await tenant.admin.post("/audiences/preview",
                                      json={"definition": SEED, "limit": 2})
    assert preview.status_code == 200, preview.text
    assert preview.json()["profiles"] == [
        {"profileId": "m-atl-2000", "fields": {"city": "Atlanta", "birthDate": "2000-12-31"}},
        {"profileId": "m-sea-1990", "fields": {"city": "Seattle", "birthDate": "1990-01-01"}}]
    assert (await tenant.admin.get("/audiences")).json() == []  # nothing stored

    stored = (await create(tenant, SEED)).json()
    by_id = await tenant.admin.get(f"/audiences/{stored['audienceId']}/count")
    assert by_id.json()["count"] == count.json()["count"]
    wider = {"any": [SEED, {"path": "city", "op": "eq", "value": "Portland"}]}
    assert (await tenant.admin.post("/audiences/count", json={"definition": wider})
            ).json()["count"] == 4


async def test_a_bad_draft_is_a_422_naming_its_place(tenant: Tenant) -> None:
    bad = {"all": [{"path": "city", "op": "in", "value": ["Atlanta"]},
                   {"path": "birthDate", "part": "year", "op": "gt", "value": "x"}]}
    for route in ("/audiences/count", "/audiences/preview"):
        refused = await tenant.admin.post(route, json={"definition": bad})
        assert refused.status_code == 422, refused.text
        assert [e["loc"] for e in refused.json()["detail"]] == [
            ["body", "definition", "all", 1, "value"]]
    unknown = await tenant.admin.post("/audiences/count", json={
        "definition": {"path": "attributes.nope", "op": "exists", "value": True}})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "definition", "path"]
    extra = await tenant.admin.post("/audiences/count", json={"definition": SEED, "x": 1})
    assert extra.status_code == 422
    too_many = await tenant.admin.post("/audiences/preview",
                                       json={"definition": SEED, "limit": 1001})
    assert too_many.status_code == 422


async def test_only_an_admin_key_counts_a_draft(tenant: Tenant) -> None:
    profiles_key = tenant.profiles.headers["authorization"]
    async with httpx.AsyncClient(base_url=ADMIN, timeout=30,
                                 headers={"authorization": profiles_key}) as other:
        assert (await other.post("/audiences/count", json={"definition": SEED})
                ).status_code in (401, 403)
