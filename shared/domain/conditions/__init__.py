"""One condition language for audiences, typology filters, journey conditions and event
rules: a tree of ``all`` / ``any`` / ``not`` and tests over paths of a record (a profile's
built-in fields, ``attributes.<id>``, ``consent.<channel>``, an event's ``ctx.<field>``),
evaluated in Python for one record and compiled to SQL for many, with the same answers.

    condition = parse_condition(data)            # shape and bounds  (model)
    checked = check_condition(condition, schema)  # paths, types, values  (checking)
    matches(checked, record, now=now)             # one record  (evaluation)
    compile_sql(checked, now=now, first_param=2)  # many rows  (sql)

Each step that refuses raises ConditionError, whose problems name their place in the
tree. The README's "Conditions" section documents the language.
"""

from shared.domain.conditions.checking import APPLIES, Checked, check_condition
from shared.domain.conditions.evaluation import ConditionDataError, evaluate, matches
from shared.domain.conditions.model import Condition, parse_condition
from shared.domain.conditions.problems import ConditionError, Problem
from shared.domain.conditions.sql import SqlFilter, compile_sql
from shared.domain.conditions.values import PathSpec, Schema, ValueType, attribute_sql

__all__ = [
    "APPLIES", "Checked", "Condition", "ConditionDataError", "ConditionError", "PathSpec",
    "Problem", "Schema", "SqlFilter", "ValueType", "attribute_sql", "check_condition",
    "compile_sql", "evaluate", "matches", "parse_condition",
]
