"""The CLI's audience verbs, through the admin API (``PARCOURS_ADMIN_KEY``,
``PARCOURS_ADMIN_URL``)::

    parcours audiences create FILE.json     # {"name": …, "definition": {…}}
    parcours audiences list                 # a table
    parcours audiences count AUDIENCE
    parcours audiences preview AUDIENCE [--limit N]   # a table: profile id, fields tested
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from services.cli.admin_client import _call, _client, _table


def add_verbs(nouns: Any) -> None:
    audiences = nouns.add_parser("audiences", help="audiences (segments) (admin API)")
    verbs = audiences.add_subparsers(dest="verb", required=True)
    verbs.add_parser("create", help="create from a JSON file: {name, definition}"
                     ).add_argument("file", type=Path)
    verbs.add_parser("list", help="a table of the tenant's audiences")
    verbs.add_parser("count", help="how many profiles are members now"
                     ).add_argument("audience_id")
    preview = verbs.add_parser("preview", help="a table of the first members")
    preview.add_argument("audience_id")
    preview.add_argument("--limit", type=int, default=20)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value)


def audiences_table(audiences: list[dict[str, Any]]) -> str:
    return _table([("audience", "name", "updated")] + [
        (a["audienceId"], a["name"], a["updatedAt"][:19]) for a in audiences])


def preview_table(preview: dict[str, Any]) -> str:
    members = preview["profiles"]
    if not members:
        return "no members"
    paths = list(members[0]["fields"])
    return _table([("profile", *paths)] + [
        (m["profileId"], *(_cell(m["fields"].get(p)) for p in paths)) for m in members])


def run(args: argparse.Namespace) -> int:
    with _client() as client:
        if args.verb == "create":
            created = _call(client, "POST", "/audiences",
                            json=json.loads(args.file.read_text()))
            print(audiences_table([created]))
        elif args.verb == "list":
            print(audiences_table(_call(client, "GET", "/audiences")))
        elif args.verb == "count":
            counted = _call(client, "GET", f"/audiences/{args.audience_id}/count")
            print(_table([("audience", "count", "counted at"),
                          (counted["audienceId"], f"{counted['count']:,}",
                           counted["countedAt"][:19])]))
        else:
            print(preview_table(_call(client, "GET", f"/audiences/{args.audience_id}/preview",
                                      params={"limit": args.limit})))
    return 0
