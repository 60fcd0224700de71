"""``parcours rules|typologies|denylist|quarantine``: through the admin API with an admin
key of a tenant of the test's own, its tables and its refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx

from tests.integration.conftest import ADMIN
from tests.integration.test_rules_admin import FATIGUE, SCHEMA, UNDER_18, new_tenant


def parcours(key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PARCOURS_ADMIN_KEY": key}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def ok(key: str, *args: str) -> list[str]:
    done = parcours(key, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


async def test_rules_typologies_denylist_and_quarantine_from_the_command_line(
        pool: asyncpg.Pool, tmp_path: Path) -> None:
    _, key = await new_tenant(pool)
    async with httpx.AsyncClient(base_url=ADMIN, timeout=30,
                                 headers={"authorization": f"Bearer {key}"}) as admin:
        assert (await admin.put("/profile-schema", json=SCHEMA)).status_code == 200
        held = await admin.post("/quarantine", json={"channel": "sms",
                                                     "address": "+33611111111"})
        assert held.status_code == 201, held.text

    (tmp_path / "minors.json").write_text(json.dumps(UNDER_18))
    (tmp_path / "fatigue.json").write_text(json.dumps(FATIGUE))
    (tmp_path / "bad.json").write_text(json.dumps({**UNDER_18, "condition": {
        "path": "attributes.shoeSize", "op": "lt", "value": 40}}))
    header, row = ok(key, "rules", "add", str(tmp_path / "minors.json"))
    assert header.split()[:3] == ["rule", "kind", "name"]
    assert row.split()[:2] == ["r1", "filtering"] and "excludes attributes.age lt 18" in row
    ok(key, "rules", "add", str(tmp_path / "fatigue.json"))
    listed = ok(key, "rules", "list")
    assert [line.split()[:2] for line in listed[1:]] == [["r1", "filtering"], ["r2", "fatigue"]]
    assert json.loads("\n".join(ok(key, "rules", "show", "r2")))["atCap"] == "defer"
    refused = parcours(key, "rules", "add", str(tmp_path / "bad.json"))
    assert refused.returncode == 1
    assert "422" in refused.stderr and '"condition", "path"' in refused.stderr

    (tmp_path / "typology.json").write_text(json.dumps(
        {"name": "Marketing", "ruleIds": ["r1"], "isDefault": True}))
    created = ok(key, "typologies", "create", str(tmp_path / "typology.json"))
    assert created[1].split() == ["t1", "Marketing", "yes", "r1"]
    assert ok(key, "typologies", "list")[1].split()[0] == "t1"
    in_use = parcours(key, "rules", "delete", "r1")
    assert in_use.returncode == 1 and "409" in in_use.stderr and "t1" in in_use.stderr
    assert ok(key, "typologies", "delete", "t1") == ["typology t1 deleted"]
    assert ok(key, "rules", "delete", "r1") == ["rule r1 deleted"]

    added = ok(key, "denylist", "add", "email", "Someone@Example.COM", "--reason", "asked")
    assert added[1].split()[:4] == ["email", "someone@example.com", "address", "asked"]
    ok(key, "denylist", "add", "email", "spam.example")
    ok(key, "denylist", "add", "sms", "+33600000000")
    entries = [line.split()[:3] for line in ok(key, "denylist", "list")[1:]]
    assert entries == [["email", "someone@example.com", "address"],
                       ["email", "spam.example", "domain"], ["sms", "+33600000000", "address"]]
    assert len(ok(key, "denylist", "list", "--channel", "sms")) == 2
    ok(key, "denylist", "remove", "email", "SOMEONE@example.com")
    ok(key, "denylist", "remove", "sms", "+33600000000")
    assert [line.split()[1] for line in ok(key, "denylist", "list")[1:]] == ["spam.example"]
    assert parcours(key, "denylist", "remove", "sms", "+33600000000").returncode == 1

    quarantined = ok(key, "quarantine", "list")
    assert quarantined[1].split()[:2] == ["sms", "+33611111111"]
    ok(key, "quarantine", "release", "sms", "+33611111111")
    assert ok(key, "quarantine", "list") == ["channel  address  quarantined  soft failures"
                                             "  release at  reason"]
    gone = parcours(key, "quarantine", "release", "sms", "+33611111111")
    assert gone.returncode == 1 and "404" in gone.stderr
