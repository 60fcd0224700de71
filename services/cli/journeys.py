"""The CLI's journey verbs, through the admin API (``PARCOURS_ADMIN_KEY``,
``PARCOURS_ADMIN_URL``)::

    parcours journeys put FILE.json        # create or replace the draft; its problems
    parcours journeys list                 # a table
    parcours journeys validate JOURNEY     # a table of problems, by node; exit 1 on errors
    parcours journeys delete JOURNEY
    parcours journey-events put FILE.json | list | delete EVENT   # journey event types

The lifecycle (publish, test, pause, resume, stop, versions, counts, show, history, remove,
simulate-reaction, simulate-event): ``services/cli/journey_lifecycle.py``.
The http action's allow-list (``http-hosts [list|set HOST...]``):
``services/cli/journey_http_hosts.py``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from services.cli import journey_http_hosts, journey_lifecycle
from services.cli.admin_client import _call, _client, _table


def add_verbs(nouns: Any) -> None:
    journeys = nouns.add_parser("journeys", help="journeys (admin API)")
    verbs = journeys.add_subparsers(dest="verb", required=True)
    verbs.add_parser("put", help="create or replace a draft from a JSON file"
                     ).add_argument("file", type=Path)
    verbs.add_parser("list", help="a table of the tenant's journeys")
    verbs.add_parser("validate", help="the draft's problems, by node").add_argument("journey")
    verbs.add_parser("delete", help="delete a draft").add_argument("journey")
    journey_lifecycle.add_verbs(verbs)
    journey_http_hosts.add_verbs(verbs)
    events = nouns.add_parser("journey-events", help="journey event types (admin API)")
    event_verbs = events.add_subparsers(dest="verb", required=True)
    event_verbs.add_parser("put", help="create or replace from a JSON file (with eventId)"
                           ).add_argument("file", type=Path)
    event_verbs.add_parser("list", help="a table of the tenant's journey event types")
    event_verbs.add_parser("delete").add_argument("event")


def problems_table(journey: dict[str, Any]) -> str:
    problems = journey.get("problems") or []
    verdict = ("publishable" if journey.get("publishable")
               else "not publishable: fix the errors")
    if not problems:
        return f"{journey['journeyId']}: no problems, {verdict}"
    return _table([("node", "severity", "problem")] + [
        (p["node"], p["severity"], p["message"]) for p in problems]) + f"\n{verdict}"


def run_events(args: argparse.Namespace) -> int:
    with _client() as client:
        if args.verb == "put":
            body = json.loads(args.file.read_text())
            _call(client, "PUT", f"/journey-events/{body['eventId']}", json=body)
        if args.verb in ("put", "list"):
            print(_table([("event", "fields", "profile key", "condition")] + [
                (t["eventId"], ", ".join(f["id"] for f in t["definition"]["fields"]),
                 t["definition"]["profileKey"],
                 json.dumps(t["definition"].get("condition")) if
                 t["definition"].get("condition") else "-")
                for t in _call(client, "GET", "/journey-events")]))
        else:
            _call(client, "DELETE", f"/journey-events/{args.event}")
            print(f"deleted {args.event}")
    return 0


def run(args: argparse.Namespace) -> int:
    with _client() as client:
        if args.verb in journey_lifecycle.VERBS:
            return journey_lifecycle.run(client, args)
        if args.verb in journey_http_hosts.VERBS:
            return journey_http_hosts.run(client, args)
        if args.verb == "put":
            definition = json.loads(args.file.read_text())
            journey = _call(client, "PUT", f"/journeys/{definition['id']}", json=definition)
            print(problems_table(journey))
        elif args.verb == "list":
            print(_table([("journey", "name", "state", "updated")] + [
                (j["journeyId"], j["name"], j["state"], j["updatedAt"][:19])
                for j in _call(client, "GET", "/journeys")]))
        elif args.verb == "validate":
            journey = _call(client, "POST", f"/journeys/{args.journey}/validate")
            print(problems_table(journey))
            return 0 if journey["publishable"] else 1
        else:
            _call(client, "DELETE", f"/journeys/{args.journey}")
            print(f"deleted {args.journey}")
    return 0
