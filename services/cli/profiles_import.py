"""``parcours profiles import FILE [--rejects PATH] [--format csv|ndjson]``: upload a CSV
(with a header of the API's names) or NDJSON file of profiles to ``POST
/v1/profiles/import`` with a profiles key (``PARCOURS_PROFILES_KEY``), streamed, with a
progress bar (bytes sent, rows/s, ETA). No database credentials are needed.

The gateway answers once the whole file is in: a summary (read, inserted, updated,
unchanged, rejected), printed as a table, and the rejected rows, written to the rejects
file (CSV: line, profileId, field, reason; default ``FILE.rejects.csv``). Nothing is
imported unless the whole file is read; importing the same file again changes nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from services.cli import profiles_client

CHUNK = 256 * 1024
_MEDIA = {"csv": "text/csv", "ndjson": "application/x-ndjson"}


def add_verb(verbs: Any) -> None:
    parser = verbs.add_parser("import", help="import profiles from a CSV or NDJSON file")
    parser.add_argument("file", type=Path)
    parser.add_argument("--rejects", type=Path,
                        help="where rejected rows go (default FILE.rejects.csv)")
    parser.add_argument("--format", choices=tuple(_MEDIA),
                        help="csv or ndjson (default: by the file's extension)")


def file_format(path: Path, given: str | None) -> str:
    if given:
        return given
    return "ndjson" if path.suffix.lower() in (".ndjson", ".jsonl") else "csv"


def summary_table(summary: dict[str, Any]) -> str:
    seconds = summary.get("seconds") or 0
    rate = summary["read"] / seconds if seconds else 0
    rows = [("read", summary["read"]), ("inserted", summary["inserted"]),
            ("updated", summary["updated"]), ("unchanged", summary["unchanged"]),
            ("rejected", summary["rejected"])]
    lines = [f"  {name:<10}{count:>12,}" for name, count in rows]
    lines.append(f"  {'seconds':<10}{seconds:>12,.1f}  ({rate:,.0f} rows/s)")
    return "\n".join(lines)


def _upload(path: Path, progress: Progress, task: TaskID) -> Iterator[bytes]:
    began, rows = time.monotonic(), 0
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            rows += chunk.count(b"\n")
            elapsed = time.monotonic() - began
            progress.update(task, advance=len(chunk), rows=rows,
                            rate=rows / elapsed if elapsed > 0 else 0)
            yield chunk
    progress.update(task, description="sent; the gateway checks and merges")


def run(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        print(f"import: no file {path}", file=sys.stderr)
        return 1
    media = _MEDIA[file_format(path, args.format)]
    rejects_path: Path = args.rejects or path.with_name(path.name + ".rejects.csv")
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TextColumn("{task.fields[rows]:,} rows, {task.fields[rate]:,.0f} rows/s"),
               TimeRemainingColumn())
    with profiles_client._client() as client, Progress(*columns, console=console,
                                                        transient=True) as progress:
        task = progress.add_task("uploading", total=path.stat().st_size, rows=0, rate=0.0)
        with client.stream("POST", "/import", content=_upload(path, progress, task),
                           headers={"content-type": media},
                           timeout=httpx.Timeout(None, connect=10)) as response:
            if response.is_error:
                response.read()
                try:
                    detail = response.json().get("detail")
                except ValueError:
                    detail = response.text
                progress.stop()
                print(f"import {path}: {response.status_code} {json.dumps(detail)}",
                      file=sys.stderr)
                return 1
            lines = response.iter_lines()
            summary = json.loads(next(lines))["summary"]
            rejected = _write_rejects(lines, rejects_path)
    print(f"imported {path}")
    print(summary_table(summary))
    if rejected:
        print(f"{rejected:,} rejected rows (line, profileId, field, reason): {rejects_path}")
    return 0


def _write_rejects(lines: Iterator[str], path: Path) -> int:
    count = 0
    out = None
    try:
        for line in lines:
            if not line.strip():
                continue
            reject = json.loads(line)
            if out is None:
                out = path.open("w", newline="")
                writer = csv.writer(out)
                writer.writerow(["line", "profileId", "field", "reason"])
            reasons = reject.get("errors") or [{"field": reject["field"],
                                                "reason": reject["reason"]}]
            writer.writerow([reject["line"], reject["profileId"] or "",
                             reject["field"] or "",
                             "; ".join(f"{e['field']}: {e['reason']}" if e["field"]
                                       else e["reason"] for e in reasons)])
            count += 1
    finally:
        if out is not None:
            out.close()
    return count
