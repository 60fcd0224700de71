"""The CLI's profile verbs, through the gateway's profile API (``PARCOURS_PROFILES_KEY``,
``PARCOURS_GATEWAY_URL``): the same rules and checks as any other client.

``parcours profiles get ID`` prints the profile with its consent; ``--export`` prints
everything held about it (an access request). ``parcours profiles delete ID`` erases it
and prints what was removed. ``parcours profiles import FILE`` is ``profiles_import``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any
from urllib.parse import quote

import httpx

from services.cli import profiles_import
from shared.settings import get_settings


def add_verbs(nouns: Any) -> None:
    profiles = nouns.add_parser("profiles", help="profiles (profile API, a profiles key)")
    verbs = profiles.add_subparsers(dest="verb", required=True)
    get = verbs.add_parser("get", help="print a profile (--export: everything held)")
    get.add_argument("profile_id")
    get.add_argument("--export", action="store_true")
    verbs.add_parser("delete", help="erase a profile and what is held about it"
                     ).add_argument("profile_id")
    profiles_import.add_verb(verbs)


def _client() -> httpx.Client:
    key = os.environ.get("PARCOURS_PROFILES_KEY")
    if not key:
        raise SystemExit("set PARCOURS_PROFILES_KEY to a profiles key "
                         "(parcours keys create --tenant T --scope profiles)")
    url = os.environ.get("PARCOURS_GATEWAY_URL",
                         f"http://127.0.0.1:{get_settings().gateway_port}")
    return httpx.Client(base_url=f"{url}/v1/profiles",
                        headers={"authorization": f"Bearer {key}"}, timeout=30)


def run(args: argparse.Namespace) -> int:
    if args.verb == "import":
        return profiles_import.run(args)
    path = "/" + quote(args.profile_id, safe="")
    if args.verb == "get" and args.export:
        path += "/export"
    with _client() as client:
        response = client.request("DELETE" if args.verb == "delete" else "GET", path)
    body = response.json() if response.content else None
    if response.is_error:
        detail = body.get("detail") if isinstance(body, dict) else response.reason_phrase
        print(f"{args.verb} {args.profile_id}: {response.status_code} {json.dumps(detail)}",
              file=sys.stderr)
        return 1
    json.dump(body, sys.stdout, indent=2)
    print()
    return 0
