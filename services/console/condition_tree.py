"""The audience builder's condition tree: the form's nested rows to the condition language's
JSON (``shared.domain.conditions``) and back, its edits (add a row, add a group, remove),
and the admin API's 422 locations (``definition.all.1.value``) back to the row they name.
Pure: no I/O.

A node of the form has an address: ``t`` the root group, ``t.1`` its second item,
``t.1.0`` that one's first. Its inputs are named after it: ``t.1.node`` (``group`` or
``test``), a group's ``t.1.kind`` (``all``, ``any`` or ``none``: ``{"not": {"any": …}}``),
a row's ``t.1.path``, ``t.1.op``, ``t.1.part`` and ``t.1.value`` (one text box: a list is
``Atlanta, San Francisco``, a range ``1980, 1990``, a span ``last 30 days``).

A row without a path is left out of the JSON, as is a group left empty, so a blank row
never makes the live count fail; ``Built.locs`` maps each JSON place to the row's address,
so an error still lands beside the right row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

ROOT = "t"
KINDS = ("all", "any", "none")
OPS = (("eq", "is"), ("ne", "is not"), ("in", "is one of"), ("notIn", "is none of"),
       ("gt", "is greater / later than"), ("ge", "is at least"), ("lt", "is less / earlier than"),
       ("le", "is at most"), ("between", "is between (a, b)"), ("contains", "contains"),
       ("startsWith", "starts with"), ("endsWith", "ends with"),
       ("exists", "has a value (true / false)"), ("within", "is within (last 30 days)"))
OP_NAMES = frozenset(op for op, _ in OPS)
PARTS = ("year", "month", "day")
UNITS = ("hours", "days", "months", "years")
MAX_ITEMS = 200  # the language's bound on nodes
MAX_DEPTH = 10
_ADDRESS = re.compile(r"^t(\.\d{1,3}){0,9}$")
_SPAN = re.compile(r"^(last|next)\s+(\d{1,6})\s+(hour|day|month|year)s?$", re.IGNORECASE)
_INTEGER = re.compile(r"^[+-]?\d{1,19}$")
_DECIMAL = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass
class Row:
    path: str = ""
    op: str = "eq"
    part: str = ""
    value: str = ""


@dataclass
class Group:
    kind: str = "all"
    items: list[Row | Group] = field(default_factory=list)


Node = Row | Group


def blank() -> Group:
    """A new audience: one group, one empty row."""
    return Group("all", [Row()])


# --- the form ------------------------------------------------------------------------------

def _address_key(address: str) -> tuple[int, ...]:
    return tuple(int(i) for i in address.split(".")[1:])


def tree_from_form(form: Mapping[str, Any]) -> Group:
    """The tree the form's inputs describe (unknown or malformed names are ignored)."""
    nodes: dict[tuple[int, ...], str] = {}
    for key in form.keys():
        address, _, name = str(key).rpartition(".")
        if name == "node" and _ADDRESS.match(address):
            nodes[_address_key(address)] = address

    def text(address: str, name: str) -> str:
        value = form.get(f"{address}.{name}")
        return value.strip() if isinstance(value, str) else ""

    def build(address: str, key: tuple[int, ...]) -> Node:
        if text(address, "node") != "group":
            op = text(address, "op")
            part = text(address, "part")
            return Row(text(address, "path"), op if op in OP_NAMES else "eq",
                       part if part in PARTS else "", text(address, "value"))
        kind = text(address, "kind")
        children = sorted(k for k in nodes if len(k) == len(key) + 1 and k[:len(key)] == key)
        return Group(kind if kind in KINDS else "all",
                     [build(nodes[k], k) for k in children[:MAX_ITEMS]])

    if () not in nodes:
        return blank()
    root = build(ROOT, ())
    assert isinstance(root, Group)
    return root


def addresses(tree: Group) -> list[str]:
    """Every node's address, the root first, in the order drawn."""
    out: list[str] = []

    def walk(node: Node, address: str) -> None:
        out.append(address)
        if isinstance(node, Group):
            for i, item in enumerate(node.items):
                walk(item, f"{address}.{i}")

    walk(tree, ROOT)
    return out


# --- edits ---------------------------------------------------------------------------------

def _find(tree: Group, address: str) -> Node | None:
    if not _ADDRESS.match(address):
        return None
    node: Node = tree
    for index in _address_key(address):
        if not isinstance(node, Group) or index >= len(node.items):
            return None
        node = node.items[index]
    return node


def _count(tree: Node) -> int:
    return 1 + (sum(_count(i) for i in tree.items) if isinstance(tree, Group) else 0)


def edit(tree: Group, action: str, address: str) -> tuple[Group, str | None]:
    """The tree after ``action`` (``add-row``, ``add-group`` in the group at ``address``;
    ``remove`` the node at ``address``), and the address of the row to focus next."""
    node = _find(tree, address)
    if action in ("add-row", "add-group"):
        if not isinstance(node, Group) or _count(tree) >= MAX_ITEMS:
            return tree, None
        if action == "add-group" and len(_address_key(address)) + 3 > MAX_DEPTH:
            return tree, None
        node.items.append(Row() if action == "add-row" else Group("any", [Row()]))
        added = f"{address}.{len(node.items) - 1}"
        return tree, added if action == "add-row" else f"{added}.0"
    if action == "remove" and node is not None and address != ROOT:
        parent_address, _, index = address.rpartition(".")
        parent = _find(tree, parent_address)
        assert isinstance(parent, Group)
        del parent.items[int(index)]
        if not parent.items and parent_address == ROOT:
            parent.items.append(Row())
        return tree, None
    return tree, None


# --- JSON ----------------------------------------------------------------------------------

def _text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(_text_of(v) for v in value)
    return "" if value is None else str(value)


def _row_of(test: Mapping[str, Any]) -> Row:
    op = str(test.get("op", "eq"))
    if op == "within":
        direction = "last" if test.get("last") else "next"
        span = test.get(direction) or {}
        unit, count = next(iter(span.items()), ("days", ""))
        value = f"{direction} {count} {unit}"
    else:
        value = _text_of(test.get("value"))
    return Row(str(test.get("path", "")), op if op in OP_NAMES else "eq",
               str(test.get("part") or ""), value)


def tree_from_json(definition: Any) -> Group:
    """The form's tree of a stored definition. A ``not`` of an ``any`` is a ``none`` group;
    a ``not`` of anything else, a ``none`` group of that one item."""
    def node(data: Any) -> Node:
        if isinstance(data, Mapping):
            for kind in ("all", "any"):
                if isinstance(data.get(kind), list):
                    return Group(kind, [node(d) for d in data[kind]])
            if "not" in data:
                inner = data["not"]
                if isinstance(inner, Mapping) and isinstance(inner.get("any"), list):
                    return Group("none", [node(d) for d in inner["any"]])
                return Group("none", [node(inner)])
            return _row_of(data)
        return Row()

    root = node(definition)
    return root if isinstance(root, Group) else Group("all", [root])


def _scalar(text: str, type_: str | None, part: str) -> Any:
    if part or type_ == "integer":
        return int(text) if _INTEGER.match(text) else text
    if type_ == "decimal":
        return int(text) if _INTEGER.match(text) else text  # as text: read exactly
    if type_ == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def row_value(row: Row, type_: str | None) -> dict[str, Any]:
    """The test's operand fields (``value``, or ``last``/``next`` for ``within``) read
    from the row's text as its path's type; ValueError saying how to write it."""
    text = row.value.strip()
    if row.op == "exists":
        if text.lower() in ("", "true", "yes"):
            return {"value": True}
        if text.lower() in ("false", "no"):
            return {"value": False}
        raise ValueError("write true (has a value) or false (has none)")
    if row.op == "within":
        found = _SPAN.match(text)
        if not found:
            raise ValueError("write last or next, a number and a unit: last 30 days")
        return {found[1].lower(): {found[3].lower() + "s": int(found[2])}}
    if row.op in ("in", "notIn", "between"):
        if text.startswith("["):
            try:
                values = json.loads(text, parse_float=Decimal)
            except ValueError as error:
                raise ValueError(f"not a JSON list: {error}") from None
            if not isinstance(values, list):
                raise ValueError("write the values apart with commas")
        else:
            values = [_scalar(v.strip(), type_, row.part) for v in text.split(",") if v.strip()]
        if row.op == "between" and len(values) != 2:
            raise ValueError("write the two bounds apart with a comma: 1980, 1990")
        if not values:
            raise ValueError("write one value or more, apart with commas")
        return {"value": values}
    if row.op in ("contains", "startsWith", "endsWith"):
        return {"value": text}
    return {"value": _scalar(text, type_, row.part)}


@dataclass
class Built:
    definition: dict[str, Any] | None  # None: no row has a path yet
    locs: dict[str, str]  # JSON place ("all.1") → the form's address ("t.1")
    problems: dict[str, str]  # the form's own: "t.1.value" → why


def to_json(tree: Group, types: Mapping[str, str]) -> Built:
    """The definition of the rows that have a path (``types``: a path's type, to read its
    values: ``1980`` a number for an integer or a date's part, a text for a city)."""
    locs: dict[str, str] = {}
    problems: dict[str, str] = {}

    def node(item: Node, address: str) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
        """The item's JSON, and its own places relative to it: (relative loc, address)."""
        if isinstance(item, Row):
            if not item.path:
                return None, []
            test: dict[str, Any] = {"path": item.path, "op": item.op}
            if item.part:
                test["part"] = item.part
            try:
                test |= row_value(item, types.get(item.path))
            except ValueError as error:
                problems[f"{address}.value"] = str(error)
                return None, []
            return test, [("", address)]
        children: list[dict[str, Any]] = []
        places = [("", address)]
        for i, child in enumerate(item.items):
            data, below = node(child, f"{address}.{i}")
            if data is None:
                continue
            step = (f"not.any.{len(children)}" if item.kind == "none"
                    else f"{item.kind}.{len(children)}")
            places += [(f"{step}.{rel}" if rel else step, addr) for rel, addr in below]
            children.append(data)
        if not children:
            return None, []
        if item.kind == "none":
            return {"not": {"any": children}}, places
        return {item.kind: children}, places

    definition, places = node(tree, ROOT)
    locs = dict(places) if definition is not None else {}
    return Built(definition, locs, problems)


ROW_FIELDS = ("path", "op", "part", "value")


def errors_by_address(fields: Mapping[str, str], locs: Mapping[str, str],
                      prefix: str = "definition") -> dict[str, str]:
    """The API's 422 errors (``definition.all.1.value`` → why) keyed by the input they
    name (``t.1.value``), or by the node (``t.1``) for an error of a whole row or group.
    An error no row holds goes under the root, ``t``."""
    out: dict[str, str] = {}
    for key, why in fields.items():
        if key != prefix and not key.startswith(prefix + "."):
            continue
        loc = key[len(prefix) + 1:]
        place = max((p for p in locs if p == "" or loc == p or loc.startswith(p + ".")),
                    key=len, default=None)
        if place is None:
            out.setdefault(ROOT, why)
            continue
        rest = loc[len(place):].lstrip(".").split(".")[0]
        name = "value" if rest in ("last", "next") else rest
        target = f"{locs[place]}.{name}" if name in ROW_FIELDS else locs[place]
        out.setdefault(target, why)
    return out
