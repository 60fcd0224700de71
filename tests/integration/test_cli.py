"""The parcours CLI: keys straight in PostgreSQL, events and messages through the admin API."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path


def parcours(*args: str, admin_key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PARCOURS_ADMIN_KEY"}
    if admin_key:
        env["PARCOURS_ADMIN_KEY"] = admin_key
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def create_and_publish_sms_event(tmp_path: Path, key: str) -> str:
    event_id = f"EVTcli{uuid.uuid4().hex[:8]}"
    config = tmp_path / "event.json"
    config.write_text(json.dumps({"eventId": event_id, "label": "CLI", "channel": "sms",
                                  "targeting": "event",
                                  "fields": [{"id": "code", "type": "string"}]}))
    assert parcours("events", "create", str(config), admin_key=key).returncode == 0
    assert parcours("events", "publish", event_id, admin_key=key).returncode == 0
    return event_id


def test_a_marketer_configures_and_publishes_from_the_command_line(tmp_path: Path) -> None:
    created = parcours("keys", "create", "--tenant", "default", "--scope", "admin")
    assert created.returncode == 0
    key = created.stdout.strip()
    assert key.startswith("prc_admin_")
    event_id = create_and_publish_sms_event(tmp_path, key)
    template = tmp_path / "sms.json"
    template.write_text(json.dumps({"text": "Your code is {{ ctx.code }}"}))
    assert parcours("message", "edit", event_id, str(template), admin_key=key).returncode == 0
    published = parcours("message", "publish", event_id, admin_key=key)
    assert json.loads(published.stdout)["versions"][0]["state"] == "published"
    listed = parcours("events", "list", admin_key=key).stdout
    assert event_id in listed and "published" in listed


def test_errors_say_what_to_do_next() -> None:
    assert "PARCOURS_ADMIN_KEY" in parcours("events", "list").stderr
    key = parcours("keys", "create", "--tenant", "default", "--scope", "admin").stdout.strip()
    missing = parcours("events", "publish", "EVTnoSuchEvent", admin_key=key)
    assert missing.returncode != 0 and "POST /admin/v1/events" in missing.stderr


def test_test_profiles_and_an_sms_proof_from_the_command_line(tmp_path: Path) -> None:
    key = parcours("keys", "create", "--tenant", "default", "--scope", "admin").stdout.strip()
    event_id = create_and_publish_sms_event(tmp_path, key)
    profile_id = f"cli-{uuid.uuid4().hex[:8]}"
    profile = tmp_path / "tess.json"
    profile.write_text(json.dumps({"firstName": "Tess", "mobilePhone": "+15550001111",
                                   "sampleCtx": {"code": "1234"}}))
    put = parcours("test-profiles", "put", profile_id, str(profile), admin_key=key)
    assert put.returncode == 0, put.stderr
    listed = parcours("test-profiles", "list", admin_key=key).stdout
    assert profile_id in listed and "+15550001111" in listed and "code" in listed
    proof = parcours("message", "proof", event_id, "--profile", profile_id, admin_key=key)
    assert proof.returncode == 0, proof.stderr
    assert json.loads(proof.stdout)["sentTo"] == "+15550001111"
    assert parcours("message", "publish", event_id, admin_key=key).returncode == 0
    paused = parcours("message", "pause", event_id, admin_key=key)
    assert json.loads(paused.stdout)["versions"][0]["state"] == "paused"
    assert parcours("test-profiles", "delete", profile_id, admin_key=key).returncode == 0
    gone = parcours("test-profiles", "show", profile_id, admin_key=key)
    assert gone.returncode != 0 and "no test profile" in gone.stderr
