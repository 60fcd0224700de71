"""Small charts drawn on the server as SVG (no script, nothing to load): a series of
per-minute values into the points of a polyline. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Spark:
    points: str  # "x,y x,y …" for <polyline points>, empty when nothing was measured
    total: int  # over the minutes measured
    peak: int
    measured: int  # minutes with a value (None: the admin was not sampling then)


def sparkline(values: Sequence[float | None], width: int = 240, height: int = 36,
              pad: int = 2) -> Spark:
    """Minutes without a measure are left out of the line (a gap, not a zero)."""
    known = [(i, v) for i, v in enumerate(values) if v is not None]
    if not known:
        return Spark("", 0, 0, 0)
    peak = max(v for _, v in known)
    span = max(len(values) - 1, 1)
    scale = (height - 2 * pad) / peak if peak > 0 else 0.0
    if len(known) == 1:  # one minute measured: a short flat stroke, visible
        i, v = known[0]
        known = [(i, v), (i + 0.5 if i < span else i - 0.5, v)]
    points = " ".join(
        f"{pad + i * (width - 2 * pad) / span:.1f},{height - pad - v * scale:.1f}"
        for i, v in known)
    return Spark(points, int(sum(v for _, v in known)), int(peak), len(known))
