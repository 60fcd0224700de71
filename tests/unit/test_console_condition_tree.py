"""The audience builder's tree (services/console/condition_tree.py): the form's rows to the
condition language's JSON and back, edits, and the admin API's 422 places back to rows."""

from __future__ import annotations

import pytest

from services.console.condition_tree import (
    Group,
    Row,
    addresses,
    blank,
    edit,
    errors_by_address,
    row_value,
    to_json,
    tree_from_form,
    tree_from_json,
)
from shared.domain.conditions import parse_condition

SEED = {"all": [{"path": "city", "op": "in", "value": ["Atlanta", "San Francisco", "Seattle"]},
                {"path": "birthDate", "part": "year", "op": "gt", "value": 1980}]}
TYPES = {"city": "string", "birthDate": "date", "attributes.orders": "integer",
         "attributes.total": "decimal", "topics.news.subscribed": "boolean",
         "attributes.zip": "string"}
SEED_FORM = {"t.node": "group", "t.kind": "all",
             "t.0.node": "test", "t.0.path": "city", "t.0.op": "in",
             "t.0.value": "Atlanta, San Francisco, Seattle",
             "t.1.node": "test", "t.1.path": "birthDate", "t.1.part": "year", "t.1.op": "gt",
             "t.1.value": "1980"}


def _form(tree: Group) -> dict[str, str]:
    """The inputs the builder's template draws for a tree."""
    out: dict[str, str] = {}

    def walk(node: Row | Group, address: str) -> None:
        if isinstance(node, Group):
            out.update({f"{address}.node": "group", f"{address}.kind": node.kind})
            for i, item in enumerate(node.items):
                walk(item, f"{address}.{i}")
        else:
            out.update({f"{address}.node": "test", f"{address}.path": node.path,
                        f"{address}.op": node.op, f"{address}.part": node.part,
                        f"{address}.value": node.value})

    walk(tree, "t")
    return out


def test_the_seed_audience_from_the_form_is_the_demos_definition() -> None:
    built = to_json(tree_from_form(SEED_FORM), TYPES)
    assert built.definition == SEED and built.problems == {}
    assert built.locs == {"": "t", "all.0": "t.0", "all.1": "t.1"}
    parse_condition(built.definition)  # the language takes it


def test_json_to_form_and_back_round_trips() -> None:
    definitions = [
        SEED,
        {"any": [{"path": "attributes.orders", "op": "between", "value": [2, 5]},
                 {"all": [{"path": "topics.news.subscribed", "op": "eq", "value": True},
                          {"path": "birthDate", "op": "within", "last": {"days": 30}}]},
                 {"not": {"any": [{"path": "city", "op": "startsWith", "value": "San"},
                                  {"path": "attributes.zip", "op": "eq", "value": "02134"}]}},
                 {"path": "attributes.total", "op": "ge", "value": "19.90"},
                 {"path": "city", "op": "exists", "value": False}]},
    ]
    for definition in definitions:
        tree = tree_from_json(definition)
        assert to_json(tree_from_form(_form(tree)), TYPES).definition == definition


def test_a_not_of_one_test_is_a_none_group() -> None:
    tree = tree_from_json({"not": {"path": "city", "op": "eq", "value": "Boston"}})
    assert tree == Group("none", [Row("city", "eq", "", "Boston")])
    assert to_json(tree, TYPES).definition == {
        "not": {"any": [{"path": "city", "op": "eq", "value": "Boston"}]}}
    single = tree_from_json({"path": "city", "op": "eq", "value": "Boston"})
    assert single == Group("all", [Row("city", "eq", "", "Boston")])


def test_values_are_read_as_their_paths_type() -> None:
    assert row_value(Row("attributes.zip", "eq", "", "02134"), "string") == {"value": "02134"}
    assert row_value(Row("attributes.orders", "eq", "", "3"), "integer") == {"value": 3}
    assert row_value(Row("attributes.total", "eq", "", "19.90"), "decimal") == {
        "value": "19.90"}  # as text: exact
    assert row_value(Row("birthDate", "gt", "year", "1980"), "date") == {"value": 1980}
    assert row_value(Row("birthDate", "gt", "", "1980-01-01"), "date") == {
        "value": "1980-01-01"}
    assert row_value(Row("x", "eq", "", "TRUE"), "boolean") == {"value": True}
    assert row_value(Row("x", "in", "", '["a, b", "c"]'), "string") == {"value": ["a, b", "c"]}
    assert row_value(Row("x", "exists", "", ""), "string") == {"value": True}
    assert row_value(Row("x", "exists", "", "no"), "string") == {"value": False}
    assert row_value(Row("x", "within", "", "next 2 Months"), "date") == {
        "next": {"months": 2}}
    assert row_value(Row("x", "within", "", "last 1 hour"), "datetime") == {"last": {"hours": 1}}
    for op, text, why in (("between", "1980", "two bounds"), ("within", "soon", "last or next"),
                          ("exists", "maybe", "true"), ("in", " , ", "one value"),
                          ("in", "[1,", "not a JSON list")):
        with pytest.raises(ValueError, match=why):
            row_value(Row("x", op, "", text), "integer")


def test_blank_rows_and_empty_groups_are_left_out_and_places_still_map_to_rows() -> None:
    form = {**_form(Group("all", [Row(), Row("city", "eq", "", "Atlanta"),
                                  Group("any", [Row()]),
                                  Group("any", [Row(), Row("birthDate", "gt", "year", "x")])]))}
    built = to_json(tree_from_form(form), TYPES)
    assert built.definition == {"all": [
        {"path": "city", "op": "eq", "value": "Atlanta"},
        {"any": [{"path": "birthDate", "op": "gt", "part": "year", "value": "x"}]}]}
    assert built.locs == {"": "t", "all.0": "t.1", "all.1": "t.3", "all.1.any.0": "t.3.1"}
    # the API's 422 for the year lands on its row, not on the blank one before it
    assert errors_by_address({"definition.all.1.any.0.value": "must be an integer"},
                             built.locs) == {"t.3.1.value": "must be an integer"}
    assert to_json(blank(), TYPES).definition is None


def test_errors_land_beside_the_row_or_group_they_name() -> None:
    tree = tree_from_json({"all": [SEED, {"not": {"any": [
        {"path": "city", "op": "eq", "value": "Boston"}]}}]})
    built = to_json(tree, TYPES)
    errors = errors_by_address({
        "definition.all.0.all.1.op": "gt does not apply",
        "definition.all.1.not.any.0.path": "unknown path",
        "definition.all.0.all.0.value.1": "too long",
        "definition.all.0.all.1.last.days": "too many",
        "definition.all": "at most 200 nodes",
        "name": "not mine",
    }, built.locs)
    assert errors == {"t.0.1.op": "gt does not apply", "t.1.0.path": "unknown path",
                      "t.0.0.value": "too long", "t.0.1.value": "too many",
                      "t": "at most 200 nodes"}
    assert errors_by_address({"definition.all.0.all.1.last": "give one"}, built.locs) == {
        "t.0.1.value": "give one"}


def test_form_problems_are_named_by_row() -> None:
    form = {**SEED_FORM, "t.1.op": "between", "t.1.value": "1980"}
    built = to_json(tree_from_form(form), TYPES)
    assert built.problems == {"t.1.value": "write the two bounds apart with a comma: 1980, 1990"}
    assert built.definition == {"all": [SEED["all"][0]]}


def test_edits_add_rows_and_groups_and_remove() -> None:
    tree = tree_from_form(SEED_FORM)
    tree, focus = edit(tree, "add-row", "t")
    assert focus == "t.2" and tree.items[2] == Row()
    tree, focus = edit(tree, "add-group", "t")
    assert focus == "t.3.0" and tree.items[3] == Group("any", [Row()])
    tree, focus = edit(tree, "add-row", "t.3")
    assert focus == "t.3.1" and len(tree.items[3].items) == 2  # type: ignore[union-attr]
    tree, _ = edit(tree, "remove", "t.0")
    assert [a for a in addresses(tree)] == ["t", "t.0", "t.1", "t.2", "t.2.0", "t.2.1"]
    assert tree.items[0] == Row("birthDate", "gt", "year", "1980")
    for action, at in (("remove", "t"), ("add-row", "t.0"), ("add-row", "t.9"),
                       ("remove", "x.1"), ("explode", "t")):
        before = addresses(tree)
        tree, focus = edit(tree, action, at)
        assert addresses(tree) == before and focus is None
    # the last row of the root removed: an empty row instead
    lone, _ = edit(Group("all", [Row("city", "eq", "", "x")]), "remove", "t.0")
    assert lone == blank()


def test_the_form_is_read_defensively() -> None:
    assert tree_from_form({}) == blank()
    form = {"t.node": "group", "t.kind": "xor", "t.0.node": "test", "t.0.op": "drop table",
            "t.0.part": "century", "t.0.path": " city ", "t.5.node": "test",
            "t.x.node": "test", "u.0.node": "test", "t.0.0.node": "test"}
    tree = tree_from_form(form)
    assert tree.kind == "all"
    assert tree.items == [Row("city", "eq", "", ""), Row()]
    deep = ".".join(["t"] + ["0"] * 11) + ".node"
    assert tree_from_form({"t.node": "group", deep: "test"}) == Group("all", [])
    grow = Group("all", [Row()])
    address = "t"
    for _ in range(12):
        grow, focus = edit(grow, "add-group", address)
        if focus is None:
            break
        address = focus.rpartition(".")[0]
    assert address.count(".") == 8  # ten levels at most, rows included
