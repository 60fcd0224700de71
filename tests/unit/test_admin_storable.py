"""What the admin API refuses to store (services/admin/storable.py), without a database."""

import json

from services.admin.storable import MAX_DEPTH, text_problem, value_problems


def test_storable_values_have_no_problem() -> None:
    body = {"a": "text é 😀", "n": [1, -(2**63), 2**64 - 1, 1.5, None, True], "d": {"k": ""}}
    assert value_problems(body, ("body",)) == []


def test_each_unstorable_value_is_named_in_document_order() -> None:
    body = json.loads('{"a": "x\\u0000", "b\\u0000": 1, "c": [1, 18446744073709551616,'
                      ' {"d": NaN}], "e": "\\ud800", "f": Infinity}')
    assert [loc for loc, _ in value_problems(body, ("body",))] == [
        ("body", "a"), ("body", "b\x00"), ("body", "c", 1), ("body", "c", 2, "d"),
        ("body", "e"), ("body", "f")]


def test_a_key_with_a_lone_surrogate_is_named_in_a_form_utf8_can_carry() -> None:
    [(loc, why)] = value_problems({"k\ud800": 1}, ("body",))
    assert loc == ("body", "k\\ud800") and "surrogate" in why
    loc[-1].encode("utf-8")


def test_depth_is_bounded_and_walked_without_recursion() -> None:
    deep: object = []
    for _ in range(100_000):  # far past Python's recursion limit
        deep = [deep]
    [(loc, why)] = value_problems(deep, ("body",))
    assert len(loc) == MAX_DEPTH + 1 and why == f"nested deeper than {MAX_DEPTH} levels"


def test_text_problems() -> None:
    assert text_problem("plain") is None
    assert "NUL" in (text_problem("a\x00") or "")
    assert "surrogate" in (text_problem("\udfff") or "")
