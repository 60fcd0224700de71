"""The CLI's journey lifecycle verbs, through the admin API::

    parcours journeys publish JOURNEY                  # version N+1, live; its errors: exit 1
    parcours journeys test JOURNEY PROFILE... [--speed 1440]   # a test run of test profiles
    parcours journeys pause|resume JOURNEY
    parcours journeys stop JOURNEY [--test]            # the live versions, or the test runs
    parcours journeys versions JOURNEY                 # a table
    parcours journeys counts JOURNEY [--version N]     # per node, a table
    parcours journeys show JOURNEY [--version N]       # the version as a tree, counts beside
    parcours journeys conversion JOURNEY [--version N] [--since T] [--until T]  # per goal
    parcours journeys history JOURNEY PROFILE          # its instances, step by step
    parcours journeys remove JOURNEY PROFILE           # its waiting instance ends stopped
    parcours journeys simulate-reaction JOURNEY PROFILE NODE KIND [--link N]   # test runs
    parcours journeys simulate-event JOURNEY PROFILE EVENT [--payload JSON]    # test runs
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx

from services.cli.admin_client import _call, _table

VERBS = ("publish", "test", "pause", "resume", "stop", "versions", "counts", "show",
         "conversion",
         "history", "remove", "simulate-reaction", "simulate-event")
_COUNTED = ("entered", "heldOut", "passed", "waiting", "exited", "actionSent",
            "actionExcluded", "deferred", "reaction", "event", "timedOut")


def add_verbs(verbs: Any) -> None:
    verbs.add_parser("publish", help="publish the draft as a new live version"
                     ).add_argument("journey")
    test = verbs.add_parser("test", help="run the draft for test profiles (1 to 100)")
    test.add_argument("journey")
    test.add_argument("profiles", nargs="+", metavar="PROFILE")
    test.add_argument("--speed", type=float, default=1440,
                      help="waits divided by it (default 1440: a day in a minute)")
    for verb in ("pause", "resume", "versions"):
        verbs.add_parser(verb).add_argument("journey")
    stop = verbs.add_parser("stop", help="stop the live versions: instances end stopped")
    stop.add_argument("journey")
    stop.add_argument("--test", action="store_true", help="stop the test runs instead")
    for verb in ("counts", "show"):
        parser = verbs.add_parser(verb, help="per-node counts" if verb == "counts"
                                  else "the version as a tree, with its counts")
        parser.add_argument("journey")
        parser.add_argument("--version", type=int, help="default: the latest live one")
    conversion = verbs.add_parser("conversion", help="per goal: overall, per branch (the"
                                  " control group beside), per node and per message")
    conversion.add_argument("journey")
    conversion.add_argument("--version", type=int, help="default: the latest live one")
    conversion.add_argument("--since", help="instances entered from (ISO 8601, with a zone)")
    conversion.add_argument("--until", help="instances entered before")
    for verb in ("history", "remove"):
        parser = verbs.add_parser(verb)
        parser.add_argument("journey")
        parser.add_argument("profile")
    reaction = verbs.add_parser("simulate-reaction", help="a test profile's reaction")
    for name in ("journey", "profile", "node", "kind"):
        reaction.add_argument(name)
    reaction.add_argument("--link", type=int)
    event = verbs.add_parser("simulate-event", help="a journey event for a test profile")
    for name in ("journey", "profile", "event"):
        event.add_argument(name)
    event.add_argument("--payload", default="{}", help="the event's fields, as JSON")


def _version_line(v: dict[str, Any]) -> str:
    return f"{v['journeyId']}: version {v['version']} ({v['mode']}) {v['state']}"


def _checked_post(client: httpx.Client, path: str, **kwargs: Any) -> Any:
    """A POST whose 422 may carry the draft's problems: printed as a table."""
    response = client.post(path, **kwargs)
    detail = response.json().get("detail") if response.is_error and response.content \
        else None
    if isinstance(detail, dict) and "problems" in detail:
        print(_table([("node", "severity", "problem")] + [
            (p["node"], p["severity"], p["message"]) for p in detail["problems"]]),
            file=sys.stderr)
        raise SystemExit(detail["message"])
    return _call(client, "POST", path, **kwargs) if response.is_error else response.json()


def versions_table(versions: list[dict[str, Any]]) -> str:
    return _table([("version", "mode", "state", "published", "speed", "test profiles",
                    "entry", "waiting")] + [
        (str(v["version"]), v["mode"], v["state"], v["publishedAt"][:19], f"{v['speed']:g}",
         str(len(v["testProfiles"])),
         "done" if v["entry"]["done"] else f"after {v['entry'].get('after') or '-'}",
         str(v.get("waiting", 0))) for v in versions])


def _branches(counts: dict[str, Any]) -> str:
    """A split's profiles by branch: "A 480, B 520"."""
    return ", ".join(f"{name} {n}" for name, n in counts.get("branches", {}).items())


def counts_table(counts: dict[str, Any]) -> str:
    return _table([("node", "type", *_COUNTED, "branches")] + [
        (n["node"], n["type"], *(str(n[k]) if k in n else "" for k in _COUNTED),
         _branches(n)) for n in counts["nodes"]])


def _share(share: dict[str, Any], base: str = "entered") -> tuple[str, str, str, str]:
    if share["rate"] is None:
        return str(share[base]), str(share["converted"]), "-", "-"
    low, high = share["ci95"]
    return (str(share[base]), str(share["converted"]), f"{share['rate']:.1%}",
            f"{low:.1%} – {high:.1%}")


def conversion_tables(report: dict[str, Any]) -> str:
    """A table per goal: everyone, the control group, each split branch, each node, each
    message (sent, converted after it last)."""
    out = [f"{report['journeyId']}: version {report['version']} ({report['mode']})"]
    if not report["goals"]:
        out.append("no goals: add `goals` to the journey's definition")
    for goal in report["goals"]:
        rows = [("", "entered", "converted", "rate", "95 % interval"),
                ("all", *_share(goal)), ("control group (heldOut)", *_share(goal["heldOut"]))]
        rows += [(f"branch {node}.{name}", *_share(share))
                 for node, branches in goal["branches"].items()
                 for name, share in branches.items()]
        rows += [(f"node {node}", *_share(share)) for node, share in goal["nodes"].items()]
        rows += [(f"message {node} (sent)", *_share(share, "sent"))
                 for node, share in goal["messages"].items()]
        out += [f"\ngoal {goal['goal']}", _table(rows)]
        if "differences" in goal:
            out += ["", _table(_difference_rows(goal["differences"]))]
    return "\n".join(out)


def _difference_rows(found: dict[str, Any]) -> list[tuple[str, ...]]:
    """Rate differences: everyone against the control group, each two-branch split's
    first branch against its second (percentage points, Fisher's exact p-value)."""
    rows: list[tuple[str, ...]] = [("difference", "rate", "95 % interval", "p-value")]
    pairs = [("all − control group", found["heldOut"])] + [
        (f"{node}: {d['a']} − {d['b']}", d) for node, d in found["splits"].items()]
    for label, d in pairs:
        if d["difference"] is None:
            rows.append((label, "-", "-", "-"))
            continue
        low, high = d["ci95"]
        rows.append((label, f"{d['difference'] * 100:+.1f} pts",
                     f"{low * 100:+.1f} – {high * 100:+.1f} pts", f"{d['pValue']:.3f}"))
    return rows


def _label(node: dict[str, Any]) -> str:
    kind = node["type"]
    what = {"email": node.get("message"), "sms": node.get("message"),
            "push": node.get("message"), "http": node.get("url"),
            "wait": node.get("duration") or node.get("until") or node.get("untilField")
            }.get(kind)
    return f"{node['id']} ({kind}{' ' + str(what) if what else ''})"


def _ways(node: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    """(label, next) of each way out of a node; a label of None: its one plain next."""
    kind = node["type"]
    if kind == "listen":
        ways: list[tuple[str | None, str | None]] = []
        for branch in node["branches"]:
            if "reaction" in branch:
                reaction = branch["reaction"]
                ways.append((f"on {reaction['kind']} of {reaction['action']}",
                             branch["next"]))
            else:
                ways.append((f"on event {branch['event']['eventId']}", branch["next"]))
        if node.get("timeout"):
            timeout = node["timeout"]
            ends = "" if timeout.get("next") else ": ends timedOut"
            ways.append((f"after {timeout['after']}{ends}", timeout.get("next")))
        return ways
    if kind == "condition":
        return [(f"if {json.dumps(c['when'])}", c["next"]) for c in node["branches"]] + [
            ("else", node["else"])]
    if kind == "split":
        return [(f"branch {b['name']} ({b['weight']} %)", b["next"]) for b in node["branches"]]
    return [] if kind == "end" else [(None, node["next"])]


def _counts_of(counts: dict[str, Any] | None, node: str) -> str:
    if counts is None:
        return ""
    found = next((n for n in counts["nodes"] if n["node"] == node), None)
    if found is None:
        return ""
    shown = "  ".join(f"{k} {found[k]}" for k in _COUNTED if k in found)
    return f"{shown}  branches {_branches(found)}" if "branches" in found else shown


def tree(definition: dict[str, Any], counts: dict[str, Any] | None = None) -> str:
    """Entry, then each path's nodes; a branch's nodes indented under its label; a node
    reached again (a join) shown as "→ (see node X)". Counts beside each node."""
    nodes = {n["id"]: n for n in definition["nodes"]}
    entry = definition["entry"]
    what = entry.get("audienceId") or entry.get("eventId")
    rows: list[tuple[str, str]] = [(f"entry ({entry['type']} {what})",
                                    _counts_of(counts, "entry"))]
    shown: set[str] = set()

    def chain(node_id: str | None, depth: int) -> None:
        pad = "  " * depth
        while node_id is not None:
            if node_id in shown or node_id not in nodes:
                rows.append((f"{pad}→ (see node {node_id})", ""))
                return
            shown.add(node_id)
            node = nodes[node_id]
            rows.append((pad + _label(node), _counts_of(counts, node_id)))
            ways = _ways(node)
            if len(ways) == 1 and ways[0][0] is None:
                node_id = ways[0][1]
                continue
            for label, following in ways:
                rows.append((f"{pad}  {label}{':' if following else ''}", ""))
                chain(following, depth + 2)
            return

    chain(entry["next"], 0)
    rows += [(f"exit on {e['eventId']}", "") for e in definition.get("exit", [])]
    width = max(len(text) for text, _ in rows)
    return "\n".join(f"{text.ljust(width)}  {c}".rstrip() for text, c in rows)


def _history(client: httpx.Client, journey: str, profile: str) -> str:
    found = _call(client, "GET", f"/journeys/{journey}/instances/{profile}")["instances"]
    if not found:
        return f"{profile} has no instance in {journey}"
    parts = []
    for i in found:
        parts.append(f"instance {i['instanceId']}  version {i['version']} ({i['mode']})"
                     f"  {i['state']} at {i['node']}"
                     + (f"  reason: {i['reason']}" if i.get("reason") else ""))
        parts.append(_table([("at", "kind", "node", "detail")] + [
            (s["at"][:23], s["kind"], s["node"], s["detail"]) for s in i["steps"]]))
    return "\n".join(parts)


def _show(client: httpx.Client, args: argparse.Namespace) -> str:
    base = f"/journeys/{args.journey}"
    query = {} if args.version is None else {"version": args.version}
    response = client.get(f"{base}/counts", params=query)
    if response.status_code == 404 and args.version is None:  # no version yet: the draft
        draft = _call(client, "GET", base)["definition"]
        return f"{args.journey}: draft (no version yet)\n" + tree(draft)
    counts = response.json() if not response.is_error else \
        _call(client, "GET", f"{base}/counts", params=query)
    version = _call(client, "GET", f"{base}/versions/{counts['version']}")
    return _version_line(version) + "\n" + tree(version["definition"], counts)


def run(client: httpx.Client, args: argparse.Namespace) -> int:
    base = f"/journeys/{args.journey}"
    if args.verb == "publish":
        print("published " + _version_line(_checked_post(client, f"{base}/publish")))
    elif args.verb == "test":
        version = _checked_post(client, f"{base}/test", json={
            "profiles": args.profiles, "speed": args.speed})
        print(f"test run {_version_line(version)}: {len(version['testProfiles'])}"
              f" test profiles, waits divided by {version['speed']:g}")
    elif args.verb in ("pause", "resume"):
        for version in _call(client, "POST", f"{base}/{args.verb}"):
            print(_version_line(version))
    elif args.verb == "stop":
        stopped = _call(client, "POST", f"{base}/test/stop" if args.test else f"{base}/stop")
        print(f"{args.journey}: versions {', '.join(map(str, stopped['versions']))} stopped,"
              f" {stopped['stopped']} instances ended stopped")
    elif args.verb == "versions":
        print(versions_table(_call(client, "GET", f"{base}/versions")))
    elif args.verb == "counts":
        counts = _call(client, "GET", f"{base}/counts",
                       params={} if args.version is None else {"version": args.version})
        print(f"{args.journey}: version {counts['version']} ({counts['mode']})"
              f" {counts['state']}\n{counts_table(counts)}")
    elif args.verb == "show":
        print(_show(client, args))
    elif args.verb == "conversion":
        query = {k: v for k, v in (("version", args.version), ("since", args.since),
                                   ("until", args.until)) if v is not None}
        print(conversion_tables(_call(client, "GET", f"{base}/conversion", params=query)))
    elif args.verb == "history":
        print(_history(client, args.journey, args.profile))
    elif args.verb == "remove":
        removed = _call(client, "DELETE", f"{base}/instances/{args.profile}")
        print(f"removed {args.profile} from {args.journey}: its instance ended stopped at"
              f" {removed['node']} (version {removed['version']})")
    elif args.verb == "simulate-reaction":
        body = {"profileId": args.profile, "node": args.node, "kind": args.kind,
                **({} if args.link is None else {"link": args.link})}
        sent = _call(client, "POST", f"{base}/test/reactions", json=body)
        print(f"simulated {sent['kind']} of {sent['node']} (message {sent['messageId']})"
              f" for {args.profile}")
    else:
        answer = _call(client, "POST", f"{base}/test/events", json={
            "profileId": args.profile, "eventId": args.event,
            "payload": json.loads(args.payload)})
        print(f"{args.event} accepted for {args.profile}" if answer["accepted"]
              else f"{args.event} not accepted: {answer['reason']}")
    return 0
