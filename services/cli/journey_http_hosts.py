"""``parcours journeys http-hosts``: the hosts the tenant's journeys may call (the http
action's allow-list, /admin/v1/journey-http-hosts)::

    parcours journeys http-hosts [list]         # one entry a line
    parcours journeys http-hosts set HOST...    # the whole list, replaced (none: empty)
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx

from services.cli.admin_client import _call

VERBS = ("http-hosts",)
PATH = "/journey-http-hosts"


def add_verbs(verbs: Any) -> None:
    hosts = verbs.add_parser("http-hosts", help="the hosts http actions may call: list, or"
                             " set HOST... (api.example.com, *.example.com, host:port)")
    hosts.add_argument("action", nargs="?", choices=("list", "set"), default="list")
    hosts.add_argument("hosts", nargs="*", metavar="HOST")


def run(client: httpx.Client, args: argparse.Namespace) -> int:
    if args.action == "list" and args.hosts:
        raise SystemExit("http-hosts list takes no hosts: did you mean `http-hosts set`?")
    if args.action == "set":
        response = client.put(PATH, json={"hosts": args.hosts})
        if response.status_code == 422:  # each bad entry, with what to write instead
            print("\n".join(p["msg"] for p in response.json()["detail"]), file=sys.stderr)
            return 1
        if response.is_error:
            raise SystemExit(f"PUT {PATH}: {response.status_code} {response.text}")
        hosts = response.json()
    else:
        hosts = _call(client, "GET", PATH)
    print("\n".join(hosts["hosts"]) or "no hosts: http actions may call none")
    return 0
