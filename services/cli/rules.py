"""The CLI's delivery-rule verbs, through the admin API (``PARCOURS_ADMIN_KEY``,
``PARCOURS_ADMIN_URL``)::

    parcours rules list | add FILE.json | show RULE | delete RULE
    parcours typologies list | create FILE.json | delete TYPOLOGY
    parcours denylist list [--channel C] | add CHANNEL ENTRY [--reason TEXT]
    parcours denylist remove CHANNEL ENTRY
    parcours quarantine list [--channel C] [--all] | release CHANNEL ADDRESS
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from services.cli.admin_client import _call, _client, _table

NOUNS = ("rules", "typologies", "denylist", "quarantine")
CHANNELS = ("email", "sms", "push")


def add_verbs(nouns: Any) -> None:
    verbs = nouns.add_parser("rules", help="delivery rules (admin API)").add_subparsers(
        dest="verb", required=True)
    verbs.add_parser("list", help="a table of the tenant's rules")
    verbs.add_parser("add", help="create from a JSON file: one rule (see README)"
                     ).add_argument("file", type=Path)
    for verb in ("show", "delete"):
        verbs.add_parser(verb).add_argument("rule_id")

    verbs = nouns.add_parser("typologies", help="typologies: ordered rules (admin API)"
                             ).add_subparsers(dest="verb", required=True)
    verbs.add_parser("list", help="a table of the tenant's typologies")
    verbs.add_parser("create", help="create from a JSON file: {name, ruleIds, isDefault}"
                     ).add_argument("file", type=Path)
    verbs.add_parser("delete").add_argument("typology_id")

    verbs = nouns.add_parser("denylist", help="addresses that receive nothing (admin API)"
                             ).add_subparsers(dest="verb", required=True)
    verbs.add_parser("list").add_argument("--channel", choices=CHANNELS)
    add = verbs.add_parser("add", help="an address, a phone number, a token, or an email"
                                       " domain (example.com)")
    remove = verbs.add_parser("remove")
    for parser in (add, remove):
        parser.add_argument("channel", choices=CHANNELS)
        parser.add_argument("entry")
    add.add_argument("--reason")

    verbs = nouns.add_parser("quarantine", help="addresses kept from receiving after"
                                                " failures (admin API)"
                             ).add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list")
    listing.add_argument("--channel", choices=CHANNELS)
    listing.add_argument("--all", action="store_true", help="watched addresses too")
    release = verbs.add_parser("release")
    release.add_argument("channel", choices=CHANNELS)
    release.add_argument("address")


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def rules_table(rules: list[dict[str, Any]]) -> str:
    return _table([("rule", "kind", "name", "enabled", "summary")] + [
        (r["ruleId"], r["kind"], r["name"], "yes" if r["enabled"] else "no", r["summary"])
        for r in rules])


def typologies_table(typologies: list[dict[str, Any]]) -> str:
    return _table([("typology", "name", "default", "rules (in order)")] + [
        (t["typologyId"], t["name"], "yes" if t["isDefault"] else "", ", ".join(t["ruleIds"]))
        for t in typologies])


def _pages(client: httpx.Client, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = _call(client, "GET", path, params={**params, "limit": 1000,
                                                  **({"cursor": cursor} if cursor else {})})
        items += page["items"]
        if not (cursor := page["nextCursor"]):
            return items


def denylist_table(entries: list[dict[str, Any]]) -> str:
    return _table([("channel", "entry", "kind", "reason", "added")] + [
        (e["channel"], e["entry"], e["kind"], _cell(e["reason"]), e["addedAt"][:19])
        for e in entries])


def quarantine_table(rows: list[dict[str, Any]]) -> str:
    return _table([("channel", "address", "quarantined", "soft failures", "release at",
                    "reason")] + [
        (q["channel"], q["address"], (q["quarantinedAt"] or "-")[:19], str(q["softFailures"]),
         (q["releaseAt"] or "-")[:19], _cell(q["reason"])) for q in rows])


def _rules(client: httpx.Client, args: argparse.Namespace) -> str | None:
    if args.verb == "list":
        return rules_table(_call(client, "GET", "/rules"))
    if args.verb == "add":
        rule = _call(client, "POST", "/rules", json=json.loads(args.file.read_text()))
        return rules_table([row for row in _call(client, "GET", "/rules")
                            if row["ruleId"] == rule["ruleId"]])
    if args.verb == "show":
        return json.dumps(_call(client, "GET", f"/rules/{args.rule_id}"), indent=2)
    _call(client, "DELETE", f"/rules/{args.rule_id}")
    return f"rule {args.rule_id} deleted"


def _typologies(client: httpx.Client, args: argparse.Namespace) -> str | None:
    if args.verb == "list":
        return typologies_table(_call(client, "GET", "/typologies"))
    if args.verb == "create":
        return typologies_table([_call(client, "POST", "/typologies",
                                       json=json.loads(args.file.read_text()))])
    _call(client, "DELETE", f"/typologies/{args.typology_id}")
    return f"typology {args.typology_id} deleted"


def _denylist(client: httpx.Client, args: argparse.Namespace) -> str | None:
    if args.verb == "list":
        params = {"channel": args.channel} if args.channel else {}
        return denylist_table(_pages(client, "/denylist", params))
    if args.verb == "add":
        return denylist_table([_call(client, "POST", "/denylist", json={
            "channel": args.channel, "entry": args.entry, "reason": args.reason})])
    _call(client, "DELETE", f"/denylist/{args.channel}/{quote(args.entry, safe='@+')}")
    return f"{args.entry} removed from the {args.channel} denylist"


def _quarantine(client: httpx.Client, args: argparse.Namespace) -> str | None:
    if args.verb == "list":
        params: dict[str, Any] = {"all": "true"} if args.all else {}
        if args.channel:
            params["channel"] = args.channel
        return quarantine_table(_pages(client, "/quarantine", params))
    _call(client, "POST",
          f"/quarantine/{args.channel}/{quote(args.address, safe='@+')}/release")
    return f"{args.address} released from quarantine on {args.channel}"


def run(args: argparse.Namespace) -> int:
    verbs = {"rules": _rules, "typologies": _typologies, "denylist": _denylist,
             "quarantine": _quarantine}
    with _client() as client:
        out = verbs[args.noun](client, args)
    if out is not None:
        sys.stdout.write(out + "\n")
    return 0
