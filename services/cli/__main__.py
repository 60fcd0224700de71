"""``python -m services.cli`` (installed as ``parcours``)::

    parcours tenants create TENANT "Name"
    parcours keys create --tenant TENANT --scope admin|ingest|kafka|profiles
                         [--label TEXT] [--rate N]
    parcours keys revoke KEY_ID

    parcours events list | create FILE.json | show|publish|unpublish|delete|schema EVENT
                   (EVENT: a transactional event EVT…, or a journey message JMS…)
    parcours message show EVENT | edit EVENT FILE.json | preview EVENT [--profile ID]
    parcours message proof EVENT --profile ID | publish|unpublish|pause|resume EVENT
    parcours test-profiles list | show|delete ID | put ID FILE.json
    parcours profiles get ID [--export] | delete ID
    parcours profiles import FILE.csv|FILE.ndjson [--rejects PATH]
    parcours audiences create FILE.json | list | count|preview AUDIENCE [--limit N]
    parcours rules list | add FILE.json | show|delete RULE
    parcours typologies list | create FILE.json | delete TYPOLOGY
    parcours denylist list [--channel C] | add CHANNEL ENTRY [--reason T] | remove CHANNEL ENTRY
    parcours quarantine list [--channel C] [--all] | release CHANNEL ADDRESS
    parcours maintenance purge [--batch N]
    parcours webhooks create URL [--event E]… [--status S]… [--kind K]… | list
    parcours webhooks show|delete|ping|enable|disable|rotate-secret|deliveries WEBHOOK
    parcours webhooks redeliver WEBHOOK DELIVERY
    parcours journeys put FILE.json | list | validate|delete JOURNEY
    parcours journeys publish|pause|resume|versions JOURNEY | stop JOURNEY [--test]
    parcours journeys test JOURNEY PROFILE… [--speed F] | counts|show JOURNEY [--version N]
    parcours journeys history|remove JOURNEY PROFILE
    parcours journeys simulate-reaction JOURNEY PROFILE NODE KIND [--link N]
    parcours journeys simulate-event JOURNEY PROFILE EVENT [--payload JSON]
    parcours journeys http-hosts [list] | set HOST…   (the http action's allow-list)
    parcours journey-events put FILE.json | list | delete EVENT
    parcours reconcile [--since ISO | --last 30m] [--until ISO] [--tenant T] [--event E]
                       [--grace S] [--json]   (did every accepted event end, once?)
    parcours deadletters list [--stage S] [--reason T] [--key T] [--since ISO | --last 24h]
                              [--until ISO] [--limit N] [--json] | show ID
    parcours deadletters replay ID… | [list's filters] [--dry-run]   (signed inputs only)

A new key is printed once; only its digest is stored. A kafka key signs the records a
producer writes straight to Kafka (shared/kafka_signing.py); creating one needs the
server's PARCOURS_KAFKA_SIGNING_SECRET, from which its secret derives. Tenants and keys
are written to PostgreSQL directly (bootstrapping needs no key); events, messages and
test profiles go through the admin API with PARCOURS_ADMIN_KEY (and PARCOURS_ADMIN_URL,
default the local one); profiles through the profile API with PARCOURS_PROFILES_KEY (and
PARCOURS_GATEWAY_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.cli import (
    admin_client,
    audiences,
    deadletters,
    journeys,
    maintenance,
    profiles_client,
    reconcile,
    rules,
    webhooks,
)
from shared.adapters.key_store import create_key, create_tenant, revoke_key
from shared.adapters.postgres import connect
from shared.domain.api_keys import Scope
from shared.settings import get_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parcours", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    nouns = parser.add_subparsers(dest="noun", required=True)
    tenants = nouns.add_parser("tenants").add_subparsers(dest="verb", required=True)
    create = tenants.add_parser("create", help="create (or rename) a tenant")
    create.add_argument("tenant")
    create.add_argument("name")
    keys = nouns.add_parser("keys").add_subparsers(dest="verb", required=True)
    new_key = keys.add_parser("create", help="create an API key and print it once")
    new_key.add_argument("--tenant", required=True)
    new_key.add_argument("--scope", required=True, choices=[s.value for s in Scope])
    new_key.add_argument("--label", default="")
    new_key.add_argument("--rate", type=int, default=2000, help="requests/s (bursts of 2×)")
    revoke = keys.add_parser("revoke", help="revoke a key (effective within 10 s)")
    revoke.add_argument("key_id")
    admin_client.add_verbs(nouns)
    profiles_client.add_verbs(nouns)
    audiences.add_verbs(nouns)
    rules.add_verbs(nouns)
    maintenance.add_verbs(nouns)
    webhooks.add_verbs(nouns)
    journeys.add_verbs(nouns)
    reconcile.add_verbs(nouns)
    deadletters.add_verbs(nouns)
    return parser


async def _run(args: argparse.Namespace) -> int:
    connection = await connect(get_settings().pg_dsn)
    try:
        if args.noun == "tenants":
            await create_tenant(connection, args.tenant, args.name)
            print(f"tenant {args.tenant} ready")
        elif args.verb == "create":
            scope = Scope(args.scope)
            print(await create_key(
                connection, args.tenant, scope, args.label, args.rate,
                kafka_signing_secret=get_settings().kafka_signing_secret.encode(),
            ))
            if scope is Scope.KAFKA:
                print("sign each record with it: headers parcours-key-id (the 12 characters"
                      " after prc_kafka_) and parcours-signature (hex HMAC-SHA256 of the"
                      " value bytes, keyed with the 43 characters after the key id and _);"
                      " see shared/kafka_signing.py", file=sys.stderr)
        elif not await revoke_key(connection, args.key_id):
            print(f"no active key {args.key_id}", file=sys.stderr)
            return 1
        return 0
    finally:
        await connection.close()


def main() -> None:
    args = _parser().parse_args()
    if args.noun in ("events", "message", "test-profiles"):
        sys.exit(admin_client.run(args))
    if args.noun == "audiences":
        sys.exit(audiences.run(args))
    if args.noun in rules.NOUNS:
        sys.exit(rules.run(args))
    if args.noun == "profiles":
        sys.exit(profiles_client.run(args))
    if args.noun == "maintenance":
        sys.exit(maintenance.run(args))
    if args.noun == "webhooks":
        sys.exit(webhooks.run(args))
    if args.noun == "journeys":
        sys.exit(journeys.run(args))
    if args.noun == "journey-events":
        sys.exit(journeys.run_events(args))
    if args.noun == "reconcile":
        sys.exit(reconcile.run(args))
    if args.noun == "deadletters":
        sys.exit(deadletters.run(args))
    sys.exit(asyncio.run(_run(args)))


if __name__ == "__main__":
    main()
