"""A journey drawn as a graph: its entry and nodes as boxes, its ``next`` ids as arrows
labelled with what takes them (a reaction, an event, a timeout, a case, a split's branch),
laid out in layers (Sugiyama, by ``grandalf``) into coordinates that the console's
template draws as SVG. Pure: no I/O.

The definition is read leniently, as the marketer types it: a node of an unknown type is
still a box, an arrow to an id no node has ends at a box marked missing, and a loop is
drawn (the layout turns it around to layer the rest).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from grandalf.graphs import Edge as GEdge
from grandalf.graphs import Graph as GGraph
from grandalf.graphs import Vertex
from grandalf.layouts import SugiyamaLayout

ENTRY = "entry"  # the id validation gives the entry's problems
NODE_W, NODE_H = 210, 84
X_SPACE, Y_SPACE = 36, 46
MARGIN = 16
COMPONENT_GAP = 60
MAX_TEXT = 28


@dataclass
class Box:
    id: str
    type: str
    detail: str
    missing: bool = False
    x: float = 0  # top-left corner
    y: float = 0
    w: float = NODE_W
    h: float = NODE_H

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


@dataclass
class Arrow:
    source: str
    target: str
    label: str
    points: list[tuple[float, float]] = field(default_factory=list)
    label_at: tuple[float, float] = (0, 0)
    loop: bool = False  # a node back to itself
    back: bool = False  # to a node drawn above: a curve beside the boxes

    @property
    def d(self) -> str:
        """The SVG path."""
        if (self.loop or self.back) and self.points:
            (x1, y1), (x2, y2) = self.points[0], self.points[-1]
            bulge = 60 if self.loop else 70 + abs(y1 - y2) / 6
            return (f"M {x1:.1f} {y1:.1f} C {x1 + bulge:.1f} {y1 - 10:.1f}"
                    f" {x2 + bulge:.1f} {y2 + 10:.1f} {x2:.1f} {y2:.1f}")
        return "M " + " L ".join(f"{x:.1f} {y:.1f}" for x, y in self.points)


@dataclass
class Drawing:
    boxes: list[Box]
    arrows: list[Arrow]
    width: float
    height: float

    def box(self, node_id: str) -> Box | None:
        return next((b for b in self.boxes if b.id == node_id), None)


def short(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _s(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _duration(value: Any) -> str:
    """ISO 8601 durations as people say them: P1D → 1 day, PT2H30M → 2 h 30 min."""
    text = _s(value)
    units = {"D": ("day", "days"), "W": ("week", "weeks"), "H": ("h", "h"),
             "M": ("min", "min"), "S": ("s", "s")}
    if not text.startswith("P"):
        return text
    out, number, in_time = [], "", False
    for char in text[1:]:
        if char == "T":
            in_time = True
        elif char.isdigit() or char == ".":
            number += char
        elif char in units and number:
            if char == "M" and not in_time:
                out.append(f"{number} month" + ("" if number == "1" else "s"))
            else:
                one, many = units[char]
                out.append(f"{number} {one if number == '1' else many}")
            number = ""
        else:
            return text
    return " ".join(out) or text


def _detail(node: Mapping[str, Any]) -> str:
    kind = _s(node.get("type"))
    if kind in ("email", "sms", "push"):
        return f"{kind} · {_s(node.get('message'))}"
    if kind == "listen":
        timeout = node.get("timeout")
        after = _duration(timeout.get("after")) if isinstance(timeout, Mapping) else ""
        return f"listen · timeout {after}" if after else "listen · no timeout"
    if kind == "wait":
        for key in ("duration", "until", "untilField"):
            if node.get(key):
                what = _duration(node[key]) if key == "duration" else _s(node[key])
                return f"wait · {what}"
        return "wait"
    if kind == "condition":
        return "condition"
    if kind == "split":
        return "random split"
    if kind == "updateProfile":
        return "update profile"
    if kind == "http":
        return f"http {_s(node.get('method')) or 'POST'}"
    if kind == "end":
        return "end"
    return kind or "(no type)"


def _reaction_label(branch: Mapping[str, Any]) -> str:
    reaction, event = branch.get("reaction"), branch.get("event")
    if isinstance(reaction, Mapping):
        return f"{_s(reaction.get('kind'))} {_s(reaction.get('action'))}".strip()
    if isinstance(event, Mapping):
        return f"event {_s(event.get('eventId'))}{' (when…)' if event.get('when') else ''}"
    return "branch"


def _arrows_of(node: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(target, label) of each arrow out of the node, in the order its branches are tried."""
    kind = node.get("type")
    found = node.get("branches")
    branches: list[Any] = found if isinstance(found, list) else []
    out: list[tuple[str, str]] = []
    if kind == "listen":
        out += [(_s(b.get("next")), _reaction_label(b)) for b in branches
                if isinstance(b, Mapping)]
        timeout = node.get("timeout")
        if isinstance(timeout, Mapping) and timeout.get("next"):
            out.append((_s(timeout["next"]), f"after {_duration(timeout.get('after'))}"))
    elif kind == "condition":
        out += [(_s(b.get("next")), f"case {i + 1}") for i, b in enumerate(branches)
                if isinstance(b, Mapping)]
        if node.get("else"):
            out.append((_s(node["else"]), "else"))
    elif kind == "split":
        out += [(_s(b.get("next")), f"{_s(b.get('name'))} {_s(b.get('weight'))}%")
                for b in branches if isinstance(b, Mapping)]
    elif node.get("next"):
        out.append((_s(node["next"]), ""))
    return [(target, label) for target, label in out if target]


def graph_of(definition: Mapping[str, Any], names: Mapping[str, str] | None = None
             ) -> tuple[list[Box], list[Arrow]]:
    """The boxes (the entry first, then the nodes as listed) and arrows of a definition;
    ``names`` shows an audience by its name rather than its id."""
    entry = definition.get("entry")
    entry = entry if isinstance(entry, Mapping) else {}
    kind = _s(entry.get("type"))
    source = _s(entry.get("audienceId") if kind == "audience" else entry.get("eventId"))
    source = (names or {}).get(source, source)
    boxes = [Box(ENTRY, "entry", f"{kind} · {source}" if source else kind or "entry")]
    arrows = [Arrow(ENTRY, _s(entry["next"]), "")] if entry.get("next") else []
    nodes = definition.get("nodes")
    seen = {ENTRY}
    for node in nodes if isinstance(nodes, list) else []:
        if not isinstance(node, Mapping) or not _s(node.get("id")) or node["id"] in seen:
            continue  # no id, or a second node of an id: validation names it
        seen.add(node["id"])
        boxes.append(Box(node["id"], _s(node.get("type")), _detail(node)))
        arrows += [Arrow(node["id"], target, label) for target, label in _arrows_of(node)]
    for arrow in arrows:
        if arrow.target not in seen:
            seen.add(arrow.target)
            boxes.append(Box(arrow.target, "missing", "no node has this id", missing=True))
    return boxes, arrows


class _View:
    def __init__(self, w: float, h: float) -> None:
        self.w, self.h, self.xy = w, h, (0.0, 0.0)


class _EdgeView:
    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []

    def setpath(self, points: list[tuple[float, float]]) -> None:
        self.points = [(float(x), float(y)) for x, y in points]


def layout(definition: Mapping[str, Any], names: Mapping[str, str] | None = None
           ) -> Drawing:
    """The graph laid out top to bottom: each connected part in layers (Sugiyama: cycles
    turned around, dummy nodes for long arrows, crossings reduced), parts side by side."""
    boxes, arrows = graph_of(definition, names)
    vertices = {b.id: Vertex(b.id) for b in boxes}
    for box in boxes:
        vertices[box.id].view = _View(box.w, box.h)
    edges: list[tuple[Arrow, GEdge]] = []
    for arrow in arrows:
        if arrow.source == arrow.target:
            arrow.loop = True
            continue
        edge = GEdge(vertices[arrow.source], vertices[arrow.target])
        edge.view = _EdgeView()
        edges.append((arrow, edge))
    graph = GGraph(list(vertices.values()), [e for _, e in edges])
    left = float(MARGIN)
    for component in graph.C:
        sugiyama = SugiyamaLayout(component)
        sugiyama.xspace, sugiyama.yspace = X_SPACE, Y_SPACE
        sugiyama.init_all(roots=[vertices[ENTRY]] if vertices[ENTRY] in component.sV
                          else None)
        sugiyama.draw(3)
        xs = [v.view.xy[0] for v in component.sV]
        ys = [v.view.xy[1] for v in component.sV]
        dx = left - min(xs) + NODE_W / 2
        dy = MARGIN - min(ys) + NODE_H / 2
        for vertex in component.sV:
            box = next(b for b in boxes if b.id == vertex.data)
            x, y = vertex.view.xy
            box.x, box.y = x + dx - box.w / 2, y + dy - box.h / 2
        for _, edge in edges:
            if edge in component.sE:
                edge.view.points = [(x + dx, y + dy) for x, y in edge.view.points]
        left += max(xs) - min(xs) + NODE_W + COMPONENT_GAP
    by_id = {b.id: b for b in boxes}
    for arrow, edge in edges:
        source, target = by_id[arrow.source], by_id[arrow.target]
        if target.cy < source.cy:  # a loop's way back: beside, not over the way down
            arrow.back = True
            arrow.points = [(source.x + source.w, source.cy), (target.x + target.w, target.cy)]
            arrow.label_at = (max(source.x, target.x) + source.w + 24
                              + abs(source.cy - target.cy) / 8, (source.cy + target.cy) / 2)
            continue
        arrow.points = _clipped(edge.view.points, source, target)
    for arrow in arrows:
        if arrow.loop:
            box = by_id[arrow.source]
            arrow.points = [(box.x + box.w, box.cy - 12), (box.x + box.w, box.cy + 12)]
            arrow.label_at = (box.x + box.w + 50, box.cy)
        elif not arrow.back:
            arrow.label_at = _label_at(arrow.points)
    xs = [b.x + b.w for b in boxes] + [x for a in arrows for x, _ in a.points]
    xs += [a.label_at[0] + 7 * len(a.label) for a in arrows if a.label]
    xs += [x + 90 for a in arrows if a.back or a.loop for x, _ in a.points]
    width = max(xs, default=0) + MARGIN
    height = max([b.y + b.h for b in boxes] + [y for a in arrows for _, y in a.points],
                 default=0) + MARGIN
    return Drawing(boxes, arrows, width, height)


def _clipped(points: list[tuple[float, float]], source: Box, target: Box
             ) -> list[tuple[float, float]]:
    """From the source box's border to the target box's (the layout gives centres)."""
    if len(points) < 2:
        points = [(source.cx, source.cy), (target.cx, target.cy)]
    inner = points[1:-1]
    first = inner[0] if inner else (target.cx, target.cy)
    last = inner[-1] if inner else (source.cx, source.cy)
    start = (source.cx, source.y + source.h) if first[1] >= source.cy else (source.cx, source.y)
    end = (target.cx, target.y) if last[1] <= target.cy else (target.cx, target.y + target.h)
    return [start, *inner, end]


def _label_at(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Beside the middle of the arrow's middle segment."""
    if len(points) < 2:
        return points[0] if points else (0, 0)
    i = (len(points) - 1) // 2
    (x1, y1), (x2, y2) = points[i], points[i + 1]
    return ((x1 + x2) / 2 + 6, (y1 + y2) / 2)


def json_problem(text: str) -> str | None:
    """Where the JSON typed is not JSON (line and column), or None."""
    import json

    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        return f"line {error.lineno}, column {error.colno}: {error.msg}"
    return None


def shape_problems(errors: list[dict[str, Any]], definition: Mapping[str, Any]
                   ) -> list[tuple[str, str]]:
    """pydantic's errors of a definition's shape as (node id or "journey", message): an
    error under ``nodes.3`` is the fourth node's, one under ``entry`` the entry's."""
    listed = definition.get("nodes")
    nodes: list[Any] = listed if isinstance(listed, list) else []
    out = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        where = "journey"
        if loc[:1] == ["entry"]:
            where = ENTRY
        elif loc[:1] == ["nodes"] and len(loc) > 1 and loc[1].isdigit():
            index = int(loc[1])
            node = nodes[index] if index < len(nodes) else None
            where = (_s(node.get("id")) if isinstance(node, Mapping) and node.get("id")
                     else f"node {index + 1}")
            loc = loc[2:]
            if loc and loc[0] in ("email", "sms", "push", "listen", "wait", "condition",
                                  "split", "updateProfile", "http", "end"):
                loc = loc[1:]  # pydantic's union tag
        out.append((where, f"{'.'.join(loc)}: {error.get('msg', 'invalid')}" if loc
                    else str(error.get("msg", "invalid"))))
    return out
