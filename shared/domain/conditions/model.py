"""A condition as users write it (JSON): a tree of ``all``, ``any``, ``not`` and tests of
one path each, bounded so that a hostile definition costs little to refuse.

    {"all": [{"path": "city", "op": "in", "value": ["Atlanta", "San Francisco", "Seattle"]},
             {"path": "birthDate", "part": "year", "op": "gt", "value": 1980}]}

What a path means and which operators fit it is the checker's business (``checking``):
this module knows only the shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.domain.conditions.problems import ConditionError, Loc, Problem

MAX_DEPTH = 10  # levels, the root being the first
MAX_NODES = 200  # all, any, not and tests together
MAX_VALUES = 1_000  # values of an `in` or `notIn` list
MAX_TEXT = 1_000  # characters of a string value

# Segments are field ids, attribute names (64 characters) and topic ids (with "-").
SEGMENT = r"[A-Za-z][A-Za-z0-9_-]{0,63}"
PATH_PATTERN = rf"^{SEGMENT}(\.{SEGMENT}){{0,3}}$"

Path = Annotated[str, StringConstraints(pattern=PATH_PATTERN), Field(
    description="a field of the record: a built-in such as `city`, `attributes.<name>`,"
                " `consent.<channel>.marketing` or `ctx.<field>`, as the caller's schema"
                " names them")]


def _one_error(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """One error for a value of no JSON scalar type, not one per member of the union."""
    try:
        return handler(value)
    except ValidationError as error:
        if isinstance(value, str):  # the string member's own error: too long, not Unicode
            last = error.errors()[-1]
            raise PydanticCustomError(last["type"], "{msg}", {"msg": last["msg"]}) from None
        raise PydanticCustomError("scalar", "must be a string, a number or a boolean") from None


Scalar = Annotated[
    StrictBool | StrictInt | StrictFloat | Annotated[StrictStr, Field(max_length=MAX_TEXT)],
    WrapValidator(_one_error),
]
Part = Literal["year", "month", "day"]
PartField = Annotated[Part | None, Field(
    description="compare the year, month or day of a date or datetime (datetimes in UTC)")]
_FROZEN = ConfigDict(extra="forbid", frozen=True)


class _Test(BaseModel):
    model_config = _FROZEN

    path: Path


class Compare(_Test):
    """The value at ``path`` (or its ``part``) compared with ``value``."""

    op: Literal["eq", "ne", "gt", "ge", "lt", "le"]
    part: PartField = None
    value: Scalar


class Member(_Test):
    """The value at ``path`` (or its ``part``) is one of the values (``in``) or none (``notIn``)."""

    op: Literal["in", "notIn"]
    part: PartField = None
    value: list[Scalar] = Field(min_length=1, max_length=MAX_VALUES)


class Between(_Test):
    """``value[0] <= value at path <= value[1]``, both bounds included."""

    op: Literal["between"]
    part: PartField = None
    value: tuple[Scalar, Scalar]


class Match(_Test):
    """A text contains, starts or ends with ``value``; a list of strings contains it."""

    op: Literal["contains", "startsWith", "endsWith"]
    value: Annotated[StrictStr, Field(min_length=1, max_length=MAX_TEXT)]


class Exists(_Test):
    """The path has a value (``true``) or has none (``false``)."""

    op: Literal["exists"]
    value: StrictBool


def _count(maximum: int) -> Any:
    return Field(default=None, strict=True, ge=0, le=maximum)


class Span(BaseModel):
    """A length of time: exactly one of ``hours``, ``days``, ``months``, ``years``."""

    model_config = _FROZEN

    hours: int | None = _count(876_000)
    days: int | None = _count(36_600)
    months: int | None = _count(1_200)
    years: int | None = _count(100)

    @model_validator(mode="after")
    def _one_unit(self) -> Span:
        if sum(getattr(self, unit) is not None for unit in type(self).model_fields) != 1:
            raise ValueError("give exactly one of hours, days, months, years")
        return self


class Within(_Test):
    """A date or datetime in the ``last`` span of time up to now, or the ``next`` from now,
    both ends included."""

    op: Literal["within"]
    last: Span | None = None
    next: Span | None = None

    @model_validator(mode="after")
    def _one_direction(self) -> Within:
        if (self.last is None) == (self.next is None):
            raise ValueError("give exactly one of last, next")
        return self


Test = Annotated[Compare | Member | Between | Match | Exists | Within, Field(discriminator="op")]


class AllOf(BaseModel):
    model_config = _FROZEN

    all: list[Node] = Field(min_length=1, max_length=MAX_NODES)


class AnyOf(BaseModel):
    model_config = _FROZEN

    any: list[Node] = Field(min_length=1, max_length=MAX_NODES)


class NotOf(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True,
                              serialize_by_alias=True)

    not_: Node = Field(alias="not")


def _kind(node: Any) -> str | None:
    """Which of the four a node is, by its key: a JSON object has no type tag to read."""
    if isinstance(node, dict):
        return next((key for key in ("all", "any", "not", "path") if key in node), None)
    return _KINDS.get(type(node), "path" if isinstance(node, _Test) else None)


_KINDS: dict[type, str] = {AllOf: "all", AnyOf: "any", NotOf: "not"}
_NODE_MESSAGE = "a node is {all: [...]}, {any: [...]}, {not: ...} or a test {path, op, ...}"
Node = Annotated[
    Annotated[AllOf, Tag("all")] | Annotated[AnyOf, Tag("any")] | Annotated[NotOf, Tag("not")]
    | Annotated[Test, Tag("path")],
    Discriminator(_kind, custom_error_type="condition_node", custom_error_message=_NODE_MESSAGE),
]
for _model in (AllOf, AnyOf, NotOf):
    _model.model_rebuild()


def _bound(data: Any) -> None:
    """Refuses a tree past the bounds before pydantic builds any of it: walked without
    recursion, and stopped at the first node too many."""
    stack, nodes = [(data, 1)], 0
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict):
            continue  # not a node: validation says what is wrong with it
        nodes += 1
        if nodes > MAX_NODES:
            raise ValueError(f"a condition has at most {MAX_NODES} nodes")
        if depth > MAX_DEPTH:
            raise ValueError(f"a condition is at most {MAX_DEPTH} levels deep")
        children = node.get("all", node.get("any", [node["not"]] if "not" in node else []))
        if isinstance(children, list):
            stack.extend((child, depth + 1) for child in children[:MAX_NODES + 1])


class Condition(RootModel[Node]):
    """A condition: ``all``, ``any``, ``not`` and tests, at most 10 levels deep and 200 nodes."""

    model_config = ConfigDict(frozen=True, title="Condition")

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        _bound(data)
        return data


def tree_loc(loc: tuple[str | int, ...]) -> Loc:
    """pydantic puts the union tags in its locations, ``("all", "all", 1, "path", "eq",
    "value")``; users see the tree's own, ``("all", 1, "value")``."""
    out: list[str | int] = []
    rest = list(loc)
    while rest:
        tag = rest.pop(0)
        if tag == "path":  # a test: its op tag follows, then a field of the test
            return (*out, *rest[1:])
        if tag in ("all", "any", "not"):  # the field of the same name, then for a list its index
            out.extend(rest[:2] if tag != "not" else rest[:1])
            del rest[:2 if tag != "not" else 1]
        else:
            return (*out, tag, *rest)
    return tuple(out)


def parse_condition(data: Any) -> Condition:
    """A condition from JSON data, or a ConditionError naming each problem's place."""
    try:
        return Condition.model_validate(data)
    except ValidationError as error:
        raise ConditionError([Problem(tree_loc(e["loc"]), e["msg"])
                              for e in error.errors(include_url=False)]) from None
