"""The result table printed at the end, and the same rows as JSON under bench/results/."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.common import Row

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("id", "what", "figure", "baseline", "ratio", "target", "met?")


def figure_text(value: float | None, unit: str) -> str:
    if value is None:
        return "failed"
    if unit in ("ms", "µs"):
        return f"{value:,.1f} {unit}"
    return f"{value:,.0f} {unit}"


def _cells(row: Row) -> tuple[str, ...]:
    met = {True: "yes", False: "NO", None: "—"}[row.met]
    ratio = "—" if row.ratio is None else f"{row.ratio:.2f}"
    return (row.id, row.what, figure_text(row.figure, row.unit), row.baseline, ratio,
            row.target, met)


def table(rows: list[Row]) -> str:
    lines = [COLUMNS, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    rendered = [" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                for line in lines]
    rendered.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(rendered)


def write_json(rows: list[Row], meta: dict[str, Any], stamp: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{stamp}.json"
    path.write_text(json.dumps({**meta, "results": [asdict(r) for r in rows]}, indent=2,
                               default=str))
    return path
