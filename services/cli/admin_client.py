"""The CLI's verbs that go through the admin API (``PARCOURS_ADMIN_KEY``, ``PARCOURS_ADMIN_URL``),
so they obey the same rules and checks as any other admin client."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from shared.settings import get_settings


def add_verbs(nouns: Any) -> None:
    events = nouns.add_parser("events", help="event configurations (admin API)")
    verbs = events.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list", help="a table of the tenant's events")
    create = verbs.add_parser("create", help="create from a JSON file (see README)")
    create.add_argument("file", type=Path)
    for verb in ("show", "publish", "unpublish", "delete", "schema"):
        verbs.add_parser(verb).add_argument("event_id")

    message = nouns.add_parser("message", help="an event's message (admin API)")
    verbs = message.add_subparsers(dest="verb", required=True)
    verbs.add_parser("show").add_argument("event_id")
    edit = verbs.add_parser("edit", help="edit the draft from a JSON file of parts")
    edit.add_argument("event_id")
    edit.add_argument("file", type=Path)
    for verb in ("preview", "proof"):
        parser = verbs.add_parser(verb)
        parser.add_argument("event_id")
        parser.add_argument("--profile", required=verb == "proof", help="a test profile id")
    for verb in ("publish", "unpublish", "pause", "resume"):
        verbs.add_parser(verb).add_argument("event_id")

    profiles = nouns.add_parser("test-profiles", help="test profiles: proofs go to them")
    verbs = profiles.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list", help="a table of the tenant's test profiles")
    put = verbs.add_parser("put", help="create or replace from a JSON file (see README)")
    put.add_argument("profile_id")
    put.add_argument("file", type=Path)
    for verb in ("show", "delete"):
        verbs.add_parser(verb).add_argument("profile_id")


def _client() -> httpx.Client:
    key = os.environ.get("PARCOURS_ADMIN_KEY")
    if not key:
        raise SystemExit("set PARCOURS_ADMIN_KEY to an admin key "
                         "(parcours keys create --tenant T --scope admin)")
    url = os.environ.get("PARCOURS_ADMIN_URL",
                         f"http://127.0.0.1:{get_settings().admin_port}/admin/v1")
    return httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=30)


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    response = client.request(method, path, **kwargs)
    if response.is_error:
        detail = response.json().get("detail") if response.content else response.reason_phrase
        raise SystemExit(f"{method} {path}: {response.status_code} {json.dumps(detail)}")
    return response.json() if response.content else None


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def _events_table(events: list[dict[str, Any]]) -> str:
    return _table([("event", "channel", "targeting", "state", "version")] + [
        (e["config"]["eventId"], e["config"]["channel"], e["config"]["targeting"], e["state"],
         str(e["config"]["version"])) for e in events])


def _profiles_table(profiles: list[dict[str, Any]]) -> str:
    return _table([("test profile", "email", "mobile phone", "push devices", "sample ctx")] + [
        (p["profileId"], p["email"] or "-", p["mobilePhone"] or "-",
         str(len(p["pushRegistrations"])), ", ".join(sorted(p["sampleCtx"])) or "-")
        for p in profiles])


def _test_profiles(client: httpx.Client, args: argparse.Namespace) -> Any:
    if args.verb == "list":
        print(_profiles_table(_call(client, "GET", "/test-profiles")))
        return None
    path = f"/test-profiles/{args.profile_id}"
    if args.verb == "put":
        return _call(client, "PUT", path, json=json.loads(args.file.read_text()))
    return _call(client, "GET" if args.verb == "show" else "DELETE", path)


def run(args: argparse.Namespace) -> int:
    with _client() as client:
        if args.noun == "test-profiles":
            result = _test_profiles(client, args)
        elif args.noun == "events":
            if args.verb == "list":
                print(_events_table(_call(client, "GET", "/events")))
                return 0
            if args.verb == "create":
                result = _call(client, "POST", "/events", json=json.loads(args.file.read_text()))
            elif args.verb == "show":
                result = _call(client, "GET", f"/events/{args.event_id}")
            elif args.verb == "delete":
                result = _call(client, "DELETE", f"/events/{args.event_id}")
            elif args.verb == "schema":
                result = _call(client, "GET", f"/events/{args.event_id}/schema")
            else:
                result = _call(client, "POST", f"/events/{args.event_id}/{args.verb}")
        else:
            base = f"/events/{args.event_id}/message"
            if args.verb == "show":
                result = _call(client, "GET", base)
            elif args.verb == "edit":
                result = _call(client, "PUT", base, json=json.loads(args.file.read_text()))
            elif args.verb in ("preview", "proof"):
                body = {"profileId": args.profile} if args.profile else {}
                result = _call(client, "POST", f"{base}/{args.verb}", json=body)
            else:
                result = _call(client, "POST", f"{base}/{args.verb}")
    if result is not None:
        json.dump(result, sys.stdout, indent=2)
        print()
    return 0
