"""The console's journey graph (services/console/journey_graph.py): what is drawn for each
node kind, the layered layout of the seed journey (legible: layers top to bottom, no two
boxes overlapping, every arrow from its source's border to its target's), loops, missing
targets, parts apart, and the places of invalid JSON and of shape errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.console.journey_graph import (
    Drawing,
    graph_of,
    json_problem,
    layout,
    shape_problems,
    short,
)
from shared.domain.journeys.definition import parse_definition

_spec = importlib.util.spec_from_file_location(
    "demo_journey", Path(__file__).resolve().parents[2] / "deploy/local/demo_journey.py")
assert _spec and _spec.loader
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)
SEED: dict[str, Any] = {**demo.JOURNEY, "entry": {**demo.JOURNEY["entry"],
                                                   "audienceId": "aud_seed"}}


def _overlap(drawing: Drawing) -> list[tuple[str, str]]:
    boxes = drawing.boxes
    return [(a.id, b.id) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h]


def test_the_seed_journey_is_drawn_node_by_node_with_labelled_arrows() -> None:
    boxes, arrows = graph_of(SEED)
    assert [(b.id, b.type, b.detail) for b in boxes] == [
        ("entry", "entry", "audience · aud_seed"),
        ("mail", "email", "email · JMSwelcome"),
        ("push", "push", "push · JMSwelcomePush"),
        ("react", "listen", "listen · timeout 1 day"),
        ("reminder", "email", "email · JMSreminder"),
        ("buy", "listen", "listen · timeout 30 days"),
        ("thanks", "push", "push · JMSthanks"),
        ("done", "end", "end")]
    assert [(a.source, a.target, a.label) for a in arrows] == [
        ("entry", "mail", ""), ("mail", "push", ""), ("push", "react", ""),
        ("react", "buy", "opened mail"), ("react", "buy", "pushOpened push"),
        ("react", "reminder", "after 1 day"), ("reminder", "buy", ""),
        ("buy", "thanks", "event JEVpurchase (when…)"), ("thanks", "done", "")]


def test_the_seed_journey_is_laid_out_in_legible_layers() -> None:
    drawing = layout(SEED)
    y = {b.id: b.y for b in drawing.boxes}
    # each arrow goes down a layer or more (the seed has no loop)
    for arrow in drawing.arrows:
        assert y[arrow.target] > y[arrow.source], arrow
    assert y["entry"] < y["mail"] < y["push"] < y["react"] < y["reminder"] < y["buy"]
    assert y["buy"] < y["thanks"] < y["done"]
    assert _overlap(drawing) == []
    for box in drawing.boxes:
        assert 0 <= box.x and box.x + box.w <= drawing.width
        assert 0 <= box.y and box.y + box.h <= drawing.height
    by_id = {b.id: b for b in drawing.boxes}
    for arrow in drawing.arrows:
        (x1, y1), (x2, y2) = arrow.points[0], arrow.points[-1]
        source, target = by_id[arrow.source], by_id[arrow.target]
        assert (x1, y1) == (source.cx, source.y + source.h)  # from the bottom
        assert (x2, y2) == (target.cx, target.y)  # into the top
        assert arrow.d.startswith("M ") and " L " in arrow.d
        assert all(0 <= x <= drawing.width and 0 <= yy <= drawing.height
                   for x, yy in arrow.points)
    # the two reactions to the same next take two ways, their labels apart
    first, second = (a for a in drawing.arrows if a.target == "buy" and a.source == "react")
    assert first.points != second.points and first.label_at != second.label_at
    assert layout(SEED).boxes == drawing.boxes  # the same drawing every time


def test_every_node_kind_has_its_arrows() -> None:
    definition = {"id": "all", "entry": {"type": "event", "eventId": "EVTsignup",
                                         "next": "w"},
                  "nodes": [
                      {"id": "w", "type": "wait", "duration": "PT2H30M", "next": "c"},
                      {"id": "c", "type": "condition", "branches": [
                          {"when": {"path": "city", "op": "eq", "value": "x"}, "next": "s"}],
                       "else": "h"},
                      {"id": "s", "type": "split", "branches": [
                          {"name": "A", "weight": 50, "next": "u"},
                          {"name": "B", "weight": 50, "next": "h"}]},
                      {"id": "u", "type": "updateProfile", "set": {"x": 1}, "next": "h"},
                      {"id": "h", "type": "http", "url": "https://x.example", "method": "PUT",
                       "next": "e"},
                      {"id": "e", "type": "end"}]}
    parse_definition(definition)
    boxes, arrows = graph_of(definition)
    assert [b.detail for b in boxes] == ["event · EVTsignup", "wait · 2 h 30 min", "condition",
                                         "random split", "update profile", "http PUT", "end"]
    assert [(a.source, a.target, a.label) for a in arrows] == [
        ("entry", "w", ""), ("w", "c", ""), ("c", "s", "case 1"), ("c", "h", "else"),
        ("s", "u", "A 50%"), ("s", "h", "B 50%"), ("u", "h", ""), ("h", "e", "")]
    assert _overlap(layout(definition)) == []


def test_loops_missing_targets_and_parts_apart_are_drawn() -> None:
    definition = {"entry": {"type": "audience", "audienceId": "a", "next": "a"},
                  "nodes": [
                      {"id": "a", "type": "listen", "branches": [
                          {"event": {"eventId": "E"}, "next": "a"},
                          {"event": {"eventId": "F"}, "next": "b"}]},
                      {"id": "b", "type": "wait", "duration": "P1D", "next": "a"},
                      {"id": "c", "type": "email", "message": "JMSx", "next": "gone"},
                      {"id": "a", "type": "end"},  # a second node of an id: not drawn twice
                      {"type": "end"}, "not a node"]}
    drawing = layout(definition)
    assert [b.id for b in drawing.boxes] == ["entry", "a", "b", "c", "gone"]
    assert drawing.box("gone") is not None and drawing.box("gone").missing  # type: ignore[union-attr]
    loop = next(a for a in drawing.arrows if a.source == a.target == "a")
    assert loop.loop and " C " in loop.d
    back = next(a for a in drawing.arrows if (a.source, a.target) == ("b", "a"))
    assert back.back and " C " in back.d  # up, beside the way down
    assert _overlap(drawing) == []
    # c and gone are a part of their own, beside the rest
    main = max(b.x + b.w for b in drawing.boxes if b.id in ("entry", "a", "b"))
    assert drawing.box("c").x > main  # type: ignore[union-attr]
    assert drawing.width >= max(b.x + b.w for b in drawing.boxes)


def test_nonsense_is_drawn_as_far_as_it_goes() -> None:
    for definition in ({}, {"entry": "x", "nodes": "y"}, {"nodes": [{"id": "a"}]}):
        drawing = layout(definition)
        assert drawing.boxes[0].id == "entry" and _overlap(drawing) == []


def test_invalid_json_says_where() -> None:
    assert json_problem('{"a": 1}') is None
    assert json_problem('{\n  "a": 1,\n}') == ("line 3, column 1: Expecting property name"
                                              " enclosed in double quotes")
    assert json_problem("") == "line 1, column 1: Expecting value"


def test_shape_errors_name_their_node() -> None:
    broken = {**SEED, "nodes": [*SEED["nodes"][:2],
                                {"id": "react", "type": "listen", "branches": []},
                                *SEED["nodes"][3:]]}
    broken["entry"] = {"type": "audience", "next": "mail"}
    try:
        parse_definition(broken)
        raise AssertionError("the shape should be refused")
    except ValidationError as error:
        problems = shape_problems([dict(e) for e in error.errors()], broken)
    nodes = {node for node, _ in problems}
    assert nodes == {"entry", "react"}, problems
    assert any(node == "react" and message.startswith("branches:")
               for node, message in problems)


def test_short_text() -> None:
    assert short("abc", 3) == "abc"
    assert short("abcd", 3) == "ab…"


def test_the_entry_shows_its_audience_by_name_when_known():
    from services.console.journey_graph import graph_of

    definition = {"entry": {"type": "audience", "audienceId": "aud_1", "next": "m"},
                  "nodes": [{"id": "m", "type": "email", "message": "JMSx"}]}
    assert graph_of(definition)[0][0].detail == "audience · aud_1"
    assert graph_of(definition, {"aud_1": "Atlanta 1980+"})[0][0].detail == \
        "audience · Atlanta 1980+"
