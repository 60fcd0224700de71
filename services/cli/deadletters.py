"""``parcours deadletters``: browse the records no stage could read, and replay them.

    parcours deadletters list [--stage S] [--reason TEXT] [--key TEXT]
                              [--since ISO | --last 24h] [--until ISO] [--limit 50] [--json]
    parcours deadletters show ID [--json]
    parcours deadletters replay ID… | [filters as for list] [--dry-run] [--json]

Reads ``parcours.deadletter.v1`` (kept 7 days) in this process, with no consumer group. An
ID is ``<partition>:<offset>`` of the dead letter, as listed. A replay produces each selected
original to the topic it was read from, with its key, headers and timestamp as they were
and one more header, ``parcours-replayed-from: <ID>``, so it goes through the same checks
again: valid now (the event published, the attribute defined), it is applied; still
invalid, it is dead-lettered again with its reason. Only signed inputs are replayed
(``parcours.events.kafka.v1``, ``parcours.profiles.v1``,
``parcours.journey-events.kafka.v1``): the record keeps its producer's signature and is
never signed here, so a replay cannot act for a tenant. Exit status: 0; 1 when an ID is
not found; 4 when Kafka could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka.errors import KafkaError

from services.cli.reconcile import duration, instant
from shared.adapters.deadletters import Found, produce, read_ids, read_window
from shared.domain.deadletter import (
    REPLAYED_FROM_HEADER,
    Filter,
    Replay,
    Skip,
    parse_id,
    plan_replay,
    shorten,
)
from shared.settings import get_settings

NOT_FOUND, UNREADABLE = 1, 4
_SKIPS_LISTED = 20


def _id(text: str) -> tuple[int, int]:
    try:
        return parse_id(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", help="one stage (processor, profile-ingest, journeys, "
                                        "reactions, sender-email, …)")
    parser.add_argument("--reason", help="a part of the reason, any case")
    parser.add_argument("--key", help="a part of the original record's key")
    parser.add_argument("--since", type=instant, help="window start (default: --last ago)")
    parser.add_argument("--last", type=duration, default=timedelta(hours=24),
                        help="window length before --until when --since is not given (24h)")
    parser.add_argument("--until", type=instant, help="window end (default now)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def add_verbs(nouns: Any) -> None:
    parser = nouns.add_parser("deadletters", help="browse and replay dead letters",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help="dead letters in a window, newest last")
    _filters(listing)
    listing.add_argument("--limit", type=int, default=50, help="the latest N shown (50)")
    show = verbs.add_parser("show", help="one dead letter in full")
    show.add_argument("id", type=_id)
    show.add_argument("--json", action="store_true", help="print JSON")
    replay = verbs.add_parser("replay", help="produce the originals again to their topics")
    replay.add_argument("ids", nargs="*", type=_id, metavar="ID")
    _filters(replay)
    replay.add_argument("--dry-run", action="store_true", help="say what would be replayed")


def window(args: argparse.Namespace, now: float) -> Filter:
    until = args.until.timestamp() if args.until else now
    since = args.since.timestamp() if args.since else until - args.last.total_seconds()
    return Filter(since, until, args.stage, args.reason, args.key)


class _Progress:
    """One line on stderr, rewritten at most 4 times a second, when it is a terminal."""

    def __init__(self) -> None:
        self._shown, self._tty = 0.0, sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if self._tty and time.monotonic() - self._shown >= 0.25:
            self._shown = time.monotonic()
            print(f"\rdead letters read: {done:,} of {total:,}", end="", file=sys.stderr,
                  flush=True)

    def done(self) -> None:
        if self._shown:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def _at(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _key(found: Found) -> str:
    return "" if found.key is None else found.key.decode(errors="replace")


def _shown_key(found: Found) -> str:
    """A profile's key is ``tenant NUL profile id``: the NUL shown as ``\\0``."""
    return _key(found).replace("\0", "\\0")


def _replayed_from(found: Found) -> str | None:
    headers = (found.letter.headers if found.letter else None) or []
    return next((value for name, value in headers if name == REPLAYED_FROM_HEADER), None)


def as_json(found: Found) -> dict[str, Any]:
    letter = found.letter.model_dump() if found.letter else {"unreadable": found.raw.decode(
        errors="replace")}
    return {"id": found.id, "key": _key(found), "replayedFrom": _replayed_from(found),
            **letter}


async def _list(args: argparse.Namespace) -> int:
    selected = window(args, time.time())
    progress = _Progress()
    shown, matched, read = await read_window(get_settings(), selected, progress,
                                             keep=max(args.limit, 0))
    progress.done()
    shown = shown if args.limit > 0 else []
    if args.json:
        print(json.dumps({"since": _at(selected.since), "until": _at(selected.until),
                          "read": read, "matched": matched,
                          "letters": [as_json(f) for f in shown]}, indent=2))
        return 0
    print(f"{'id':<10} {'at (UTC)':<24} {'stage':<17} {'reason':<56} key")
    for f in shown:
        assert f.letter is not None  # read_window keeps readable ones
        replay = f"  (replay of {_replayed_from(f)})" if _replayed_from(f) else ""
        print(f"{f.id:<10} {_at(f.letter.at):<24} {f.letter.stage:<17} "
              f"{shorten(f.letter.reason, 56):<56} {shorten(_shown_key(f), 40)}{replay}")
    print(f"{len(shown)} shown of {matched:,} matched ({read:,} read) in "
          f"{_at(selected.since)} .. {_at(selected.until)}")
    return 0


def _pretty(original: str) -> str:
    try:
        return json.dumps(json.loads(original), indent=2, ensure_ascii=False)
    except ValueError:
        return original


async def _show(args: argparse.Namespace) -> int:
    found = (await read_ids(get_settings(), [args.id])).get(args.id)
    if found is None:
        print(f"no dead letter {args.id[0]}:{args.id[1]} (expired, or never written)",
              file=sys.stderr)
        return NOT_FOUND
    if args.json or found.letter is None:
        print(json.dumps(as_json(found), indent=2))
        return 0
    letter, plan = found.letter, plan_replay(found.letter, found.key, found.id)
    lines = [("id", found.id), ("at", _at(letter.at)), ("stage", letter.stage),
             ("topic", letter.topic or "(not kept)"),
             ("timestamp", _at(letter.timestamp) if letter.timestamp else "(not kept)"),
             ("key", _key(found)), ("reason", letter.reason)]
    lines += [("header", f"{name}: {value}") for name, value in letter.headers or []]
    lines.append(("replay", f"to {plan.topic}" if isinstance(plan, Replay)
                  else f"not replayable: {plan.why}"))
    for label, value in lines:
        print(f"{label:<10} {value}")
    print("original")
    print("\n".join("  " + line for line in _pretty(letter.original).splitlines()))
    return 0


async def _replay(args: argparse.Namespace) -> int:
    settings = get_settings()
    missing: list[str] = []
    if args.ids:
        by_id = await read_ids(settings, args.ids)
        missing = [f"{p}:{o}" for p, o in args.ids if (p, o) not in by_id]
        found = list(by_id.values())
    elif not (args.stage or args.reason or args.key):
        print("name dead letters (IDs) or filter them (--stage, --reason, --key)",
              file=sys.stderr)
        return 2
    else:
        progress = _Progress()
        found, _, _ = await read_window(settings, window(args, time.time()), progress)
        progress.done()
    plans = [(f, plan_replay(f.letter, f.key, f.id) if f.letter else Skip("not a dead letter"))
             for f in found]
    replays = [p for _, p in plans if isinstance(p, Replay)]
    if replays and not args.dry_run:
        await produce(settings, replays)
    skipped = [(f, p.why) for f, p in plans if isinstance(p, Skip)]
    by_topic = Counter(r.topic for r in replays)
    if args.json:
        print(json.dumps({"dryRun": args.dry_run, "selected": len(found),
                          "replayed": 0 if args.dry_run else len(replays),
                          "wouldReplay": len(replays) if args.dry_run else 0,
                          "byTopic": dict(by_topic), "missing": missing,
                          "skipped": [{"id": f.id, "why": why} for f, why in skipped]},
                         indent=2))
    else:
        verb = "would replay" if args.dry_run else "replayed"
        print(f"selected      {len(found):>6}")
        topics = ", ".join(f"{topic} {n}" for topic, n in sorted(by_topic.items()))
        print(f"{verb:<13} {len(replays):>6}" + (f"  {topics}" if topics else ""))
        print(f"skipped       {len(skipped):>6}")
        for f, why in skipped[:_SKIPS_LISTED]:
            print(f"  {f.id:<10} {f.letter.stage if f.letter else '?':<17} {why}")
        if len(skipped) > _SKIPS_LISTED:
            print(f"  … and {len(skipped) - _SKIPS_LISTED:,} more (--json lists them all)")
        if missing:
            print(f"not found     {len(missing):>6}  {' '.join(missing)}")
    return NOT_FOUND if missing else 0


def run(args: argparse.Namespace) -> int:
    verb = {"list": _list, "show": _show, "replay": _replay}[args.verb]
    try:
        return asyncio.run(verb(args))
    except BrokenPipeError:  # the output piped to head, say: nothing more is wanted
        return 0
    except (KafkaError, TimeoutError, OSError) as error:
        print(f"Kafka could not be read: {error}", file=sys.stderr)
        return UNREADABLE
