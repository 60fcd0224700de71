"""``parcours profiles get|delete``: through the profile API with a profiles key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import httpx

from tests.integration.conftest import GATEWAY, eventually, unique_email


def parcours(*args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PARCOURS_PROFILES_KEY"}
    if key:
        env["PARCOURS_PROFILES_KEY"] = key
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


async def test_get_export_and_delete_a_profile_from_the_command_line() -> None:
    assert "PARCOURS_PROFILES_KEY" in parcours("profiles", "get", "p1").stderr
    created = parcours("keys", "create", "--tenant", "default", "--scope", "profiles")
    key = created.stdout.strip()
    assert created.returncode == 0 and key.startswith("prc_profiles_")
    profile_id, email = f"cli-{uuid.uuid4().hex[:8]}", unique_email("cli")
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        async def written() -> bool:  # a key just created reaches the gateway in a moment
            response = await client.put(f"{GATEWAY}/v1/profiles/{profile_id}",
                                        json={"email": email, "firstName": "Cli"})
            return response.status_code == 201
        await eventually(written, "the profile written with the new key")

    shown = parcours("profiles", "get", profile_id, key=key)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["email"] == email
    exported = json.loads(parcours("profiles", "get", profile_id, "--export", key=key).stdout)
    assert exported["profile"]["firstName"] == "Cli" and "consentHistory" in exported
    erased = parcours("profiles", "delete", profile_id, key=key)
    assert json.loads(erased.stdout)["removed"]["profile"] == 1
    gone = parcours("profiles", "get", profile_id, key=key)
    assert gone.returncode == 1 and "404" in gone.stderr
