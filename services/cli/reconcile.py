"""``parcours reconcile``: did every event accepted in a window end, exactly once?

    parcours reconcile [--since ISO | --last 30m] [--until ISO] [--tenant T] [--event EVT…]
                       [--grace 60] [--json] [--limit 20]

Reads the input topics (Kafka), the statuses, ledger and schedules (PostgreSQL) and what the
local sinks were handed (``PARCOURS_RECONCILE_SINKS``: ``local``, ``none`` in production, or
URLs) in this process — no service is asked, so it also answers when the admin API is down —
and prints the counts of ended, waiting, stuck (with the stage), lost, duplicated and
unacknowledged events, and the same for messages without a pKey (journey messages and
other bulk sends: the engine's decision, the bulk send topics, the ledger, the sinks; not
with ``--event``); ``--json`` prints the same as the admin API's
``GET /admin/v1/reconcile``. Exit status: 0 when nothing is lost, stuck, duplicated or
unacknowledged; 1 when something is (listed); 4 when a source could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError

from shared.adapters.postgres import connect
from shared.adapters.reconcile_sources import Reconciled, Window, reconcile_window
from shared.domain.reconcile import message_table, receipts_table, table
from shared.settings import get_settings

FOUND, UNREADABLE = 1, 4
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1d``."""
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: write a number and s, m, h or d (30m)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write an ISO 8601 instant (2026-12-04T00:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_verbs(nouns: Any) -> None:
    parser = nouns.add_parser(
        "reconcile", help="did every accepted event end, exactly once?",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--since", type=instant, help="window start (default: --last ago)")
    parser.add_argument("--last", type=duration, default=timedelta(hours=1),
                        help="window length before --until when --since is not given (1h)")
    parser.add_argument("--until", type=instant, help="window end (default now)")
    parser.add_argument("--tenant", help="one tenant (default every tenant)")
    parser.add_argument("--event", help="one event id")
    parser.add_argument("--grace", type=float, default=60.0,
                        help="seconds an event may take before it counts as stuck (60)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--limit", type=int, default=20,
                        help="findings listed per kind (20; with --json, 100)")


class _Progress:
    """One line on stderr, rewritten at most 4 times a second, when it is a terminal."""

    def __init__(self) -> None:
        self._shown, self._tty = 0.0, sys.stderr.isatty()

    def __call__(self, what: str, done: int, total: int) -> None:
        if not self._tty or time.monotonic() - self._shown < 0.25:
            return
        self._shown = time.monotonic()
        print(f"\r{what}: {done:,} of {total:,}", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self._shown:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def _findings(reconciled: Reconciled, limit: int) -> list[str]:
    report, lines = reconciled.report, []
    for stuck in report.stuck[:limit]:
        lines.append(f"stuck  {stuck.pkey}  {stuck.event_id}  {stuck.status:<11} {stuck.stage}")
    for lost in report.lost[:limit]:
        lines.append(f"lost   {lost.pkey}  {lost.event_id}  from {lost.topic}")
    for dup in report.duplicated[:limit]:
        window = "in SMTP's crash window" if dup.in_smtp_window else "NOT in SMTP's window"
        lines.append(f"dup    {dup.message_id}  {dup.pkey}  {dup.copies} copies, {window}")
    for unacked in report.unacknowledged[:limit]:
        lines.append(f"unack  {unacked.message_id}  {unacked.pkey}  {unacked.channel}:"
                     " processed, the sink never got it")
    messages = reconciled.messages
    if messages is None:
        return lines
    for one in messages.stuck[:limit]:
        lines.append(f"stuck  message {one.message_id}  {one.tenant}  {one.origin}:"
                     f" {one.stage}")
    for gone in messages.lost[:limit]:
        lines.append(f"lost   message {gone.message_id}  {gone.tenant}  {gone.origin}:"
                     " decided, no later stage has it")
    for dup in messages.duplicated[:limit]:
        window = "in SMTP's crash window" if dup.in_smtp_window else "NOT in SMTP's window"
        lines.append(f"dup    message {dup.message_id}  {dup.tenant}  {dup.copies} copies,"
                     f" {window}")
    for unacked in messages.unacknowledged[:limit]:
        lines.append(f"unack  message {unacked.message_id}  {unacked.tenant}"
                     f"  {unacked.channel}: sent, the sink never got it")
    return lines


def _print_table(reconciled: Reconciled, window: Window, grace_s: float, limit: int) -> None:
    since = datetime.fromtimestamp(window.since, UTC).isoformat(timespec="seconds")
    until = datetime.fromtimestamp(window.until, UTC).isoformat(timespec="seconds")
    print(f"window {since} .. {until}, tenant {window.tenant or 'all'}"
          f"{', event ' + window.event_id if window.event_id else ''}, grace {grace_s:g} s")
    print(table(reconciled.report))
    if reconciled.messages is not None:
        print(message_table(reconciled.messages))
    for line in receipts_table(reconciled.receipts):
        print(line)
    read, sinks = reconciled.read, reconciled.sinks
    asked = "not asked" if sinks.handed is None else "asked"
    unreachable = f" ({len(sinks.unreachable)} unreachable)" if sinks.unreachable else ""
    bulk = reconciled.messages_read
    bulk_read = "" if bulk is None else (
        f", {bulk.records:,} of the bulk send topics and the engine's steps in"
        f" {bulk.seconds:.1f} s")
    print(f"read {read.records:,} records ({read.not_accepted:,} not a tenant's event) in"
          f" {read.seconds:.1f} s{bulk_read}; sinks {asked}{unreachable};"
          f" {reconciled.seconds:.1f} s in all")
    lines = _findings(reconciled, limit)
    if lines:
        print()
        print("\n".join(lines))
    print("clean: nothing lost, stuck or duplicated" if reconciled.clean
          else "NOT clean: see above (--json for the full report)")


async def _reconcile(args: argparse.Namespace) -> int:
    settings = get_settings()
    until = args.until or datetime.now(UTC)
    since = args.since or until - args.last
    if not since < until:
        print("--since must be before --until", file=sys.stderr)
        return 2
    window = Window(since.timestamp(), until.timestamp(), args.tenant, args.event)
    progress = _Progress()
    try:
        connection = await connect(settings.pg_dsn)
    except (OSError, asyncpg.PostgresError) as error:
        print(f"PostgreSQL unreachable ({error}); is the stack up (make up)?", file=sys.stderr)
        return UNREADABLE
    try:
        reconciled = await reconcile_window(settings, connection, window, args.grace, progress)
    except (KafkaError, TimeoutError) as error:
        progress.done()
        print(f"Kafka could not be read ({error}); is the broker up?", file=sys.stderr)
        return UNREADABLE
    finally:
        await connection.close()
    progress.done()
    if args.json:
        print(json.dumps(reconciled.as_json(window, args.grace, max(args.limit, 100)),
                         indent=2))
    else:
        _print_table(reconciled, window, args.grace, args.limit)
    return 0 if reconciled.clean else FOUND


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_reconcile(args))
