"""The CLI's outbound webhook verbs, through the admin API (``PARCOURS_ADMIN_KEY``,
``PARCOURS_ADMIN_URL``)::

    parcours webhooks create URL [--event EVT…]… [--channel C]… [--status S]… [--kind K]…
                             [--no-statuses] [--no-reactions] [--description T] [--disabled]
    parcours webhooks list                          # a table
    parcours webhooks show|delete|ping|enable|disable WEBHOOK
    parcours webhooks rotate-secret WEBHOOK [--keep-previous-hours H]
    parcours webhooks deliveries WEBHOOK [--state pending|delivered|failed] [--limit N]
    parcours webhooks redeliver WEBHOOK DELIVERY

``create`` and ``rotate-secret`` print the signing secret, once.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from services.cli.admin_client import _call, _client, _table


def add_verbs(nouns: Any) -> None:
    webhooks = nouns.add_parser("webhooks", help="outbound webhooks (admin API)")
    verbs = webhooks.add_subparsers(dest="verb", required=True)
    create = verbs.add_parser("create", help="subscribe an endpoint; prints its secret once")
    create.add_argument("url")
    create.add_argument("--event", action="append", dest="events", metavar="EVENT_ID")
    create.add_argument("--channel", action="append", dest="channels")
    create.add_argument("--status", action="append", dest="statuses")
    create.add_argument("--kind", action="append", dest="kinds", help="reaction kind")
    create.add_argument("--no-statuses", action="store_true", help="reactions only")
    create.add_argument("--no-reactions", action="store_true", help="status changes only")
    create.add_argument("--description", default="")
    create.add_argument("--disabled", action="store_true")
    verbs.add_parser("list", help="a table of the tenant's webhooks")
    for verb in ("show", "delete", "ping", "enable", "disable"):
        verbs.add_parser(verb).add_argument("webhook")
    rotate = verbs.add_parser("rotate-secret", help="a new secret; prints it once")
    rotate.add_argument("webhook")
    rotate.add_argument("--keep-previous-hours", type=float, default=24)
    log = verbs.add_parser("deliveries", help="the delivery log, newest first")
    log.add_argument("webhook")
    log.add_argument("--state", choices=("pending", "delivered", "failed"))
    log.add_argument("--limit", type=int, default=20)
    redeliver = verbs.add_parser("redeliver", help="send a delivery again now")
    redeliver.add_argument("webhook")
    redeliver.add_argument("delivery")


def _filter(values: list[str] | None) -> str:
    return "any" if values is None else ",".join(values) or "none"


def webhooks_table(webhooks: list[dict[str, Any]]) -> str:
    return _table([("webhook", "url", "enabled", "events", "channels", "statuses", "kinds")] + [
        (w["subscriptionId"], w["url"], "yes" if w["enabled"] else "no",
         _filter(w["eventIds"]), _filter(w["channels"]), _filter(w["statuses"]),
         _filter(w["kinds"])) for w in webhooks])


def deliveries_table(deliveries: list[dict[str, Any]]) -> str:
    if not deliveries:
        return "no deliveries"
    return _table([("delivery", "type", "state", "attempts", "http", "ms", "next", "error")] + [
        (d["deliveryId"], d["type"], d["state"], str(d["attempts"]),
         str(d["lastHttpStatus"] or "-"), str(d["lastLatencyMs"] or "-"),
         (d["nextAttemptAt"] or "-")[:19], (d["lastError"] or "")[:60])
        for d in deliveries])


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"url": args.url, "description": args.description,
                            "enabled": not args.disabled}
    for name, values in (("eventIds", args.events), ("channels", args.channels),
                         ("statuses", args.statuses), ("kinds", args.kinds)):
        if values:
            body[name] = values
    if args.no_statuses:
        body["statuses"] = []
    if args.no_reactions:
        body["kinds"] = []
    return body


def run(args: argparse.Namespace) -> int:
    with _client() as client:
        path = f"/webhooks/{getattr(args, 'webhook', '')}"
        if args.verb == "create":
            created = _call(client, "POST", "/webhooks", json=_body(args))
            print(webhooks_table([created]))
            print(f"signing secret (shown once): {created['secret']}")
        elif args.verb == "list":
            print(webhooks_table(_call(client, "GET", "/webhooks")))
        elif args.verb == "show":
            print(json.dumps(_call(client, "GET", path), indent=2))
        elif args.verb == "delete":
            _call(client, "DELETE", path)
            print(f"webhook {args.webhook} deleted")
        elif args.verb in ("enable", "disable"):
            print(webhooks_table([_call(client, "PATCH", path,
                                        json={"enabled": args.verb == "enable"})]))
        elif args.verb == "ping":
            queued = _call(client, "POST", f"{path}/ping")
            print(f"ping queued: delivery {queued['deliveryId']}")
        elif args.verb == "rotate-secret":
            rotated = _call(client, "POST", f"{path}/rotate-secret",
                            json={"keepPreviousHours": args.keep_previous_hours})
            until = rotated["previousSecretUntil"]
            print(f"signing secret (shown once): {rotated['secret']}")
            print(f"the previous one signs too until {until}" if until
                  else "the previous one no longer signs")
        elif args.verb == "deliveries":
            params = {"limit": args.limit, **({"state": args.state} if args.state else {})}
            print(deliveries_table(_call(client, "GET", f"{path}/deliveries", params=params)))
        else:
            _call(client, "POST", f"{path}/deliveries/{args.delivery}/redeliver")
            print(f"delivery {args.delivery} is due again now")
    return 0
