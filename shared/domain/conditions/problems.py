"""What is wrong with a condition, each problem at its place in the tree: the admin API
answers them as a 422 whose locations users can follow, e.g. ``["all", 1, "value"]``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    loc: Loc
    msg: str


class ConditionError(ValueError):
    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"at {list(p.loc)}: {p.msg}" for p in self.problems))
