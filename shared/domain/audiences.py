"""Audiences: a condition over a tenant's profile paths. ``profile_paths`` is the one map
from the paths a condition may name (as the profile API shows a profile) to their type and
the SQL of their value in a query ``FROM profiles`` (no alias: the consent subqueries
refer to ``profiles.``). Pure: the SQL comes from code and from names the profile schema
allows, never from a condition.

Consent defaults agree with ``consent.consent_view``: a channel never said is
``unknown`` and not blocked, a topic never joined is not subscribed.

Paths are exact: ``attributes.Tier`` is unknown when the attribute is ``tier`` (the
schema keeps names unique ignoring case, so a near miss is named in the error).
"""

from __future__ import annotations

import re
from typing import Any

from shared.domain.conditions import PathSpec, ValueType, attribute_sql
from shared.domain.conditions.checking import Checked, Negation, Test
from shared.domain.consent import BLOCKED, CHANNELS, SUBSCRIBED, ConsentKind, Marketing
from shared.domain.profile_schema import BUILT_INS, TOPIC_ID, AttributeType, ProfileSchema

_BUILT_IN_TYPES = {"email": ValueType.EMAIL, "mobilePhone": ValueType.PHONE,
                   "birthDate": ValueType.DATE}
_TOPIC = re.compile(TOPIC_ID)


def _consent_value(kind: ConsentKind, name: str, value: str) -> str:
    return (f"(SELECT {value} FROM consents WHERE consents.tenant_id = profiles.tenant_id"
            f" AND consents.profile_id = profiles.profile_id AND consents.kind = '{kind.value}'"
            f" AND consents.name = '{name}')")


def profile_paths(schema: ProfileSchema) -> dict[str, PathSpec]:
    """Every path an audience of this tenant may test, with its type and SQL."""
    paths: dict[str, PathSpec] = {"profileId": PathSpec(ValueType.STRING, "profile_id")}
    for name, column in BUILT_INS.items():
        paths[name] = PathSpec(_BUILT_IN_TYPES.get(name, ValueType.STRING), column)
    for spec in schema.attributes:
        type_ = ValueType(AttributeType(spec.type).value)
        paths[f"attributes.{spec.name}"] = PathSpec(type_, attribute_sql(spec.name, type_))
    for channel in CHANNELS:
        paths[f"consent.{channel}.marketing"] = PathSpec(ValueType.STRING, "COALESCE({}, '{}')"
            .format(_consent_value(ConsentKind.MARKETING, channel, "consents.value"),
                    Marketing.UNKNOWN.value))
        paths[f"consent.{channel}.blocked"] = PathSpec(ValueType.BOOLEAN, "COALESCE({}, false)"
            .format(_consent_value(ConsentKind.BLOCK, channel, f"consents.value = '{BLOCKED}'")))
    for topic in schema.topics:
        if not _TOPIC.fullmatch(topic.id):  # the schema checks it; SQL never trusts that
            raise ValueError(f"not a topic id: {topic.id!r}")
        paths[f"topics.{topic.id}.subscribed"] = PathSpec(ValueType.BOOLEAN,
            "COALESCE({}, false)".format(
                _consent_value(ConsentKind.TOPIC, topic.id, f"consents.value = '{SUBSCRIBED}'")))
    return paths


def paths_used(checked: Checked) -> list[Test]:
    """The tests' paths in the order they first appear (one Test per path)."""
    seen: dict[str, Test] = {}

    def walk(node: Checked) -> None:
        if isinstance(node, Test):
            seen.setdefault(node.path, node)
        elif isinstance(node, Negation):
            walk(node.item)
        else:
            for item in node.items:
                walk(item)

    walk(checked)
    return list(seen.values())


def jsonable(value: Any) -> Any:
    """A value read from PostgreSQL as JSON shows it (dates ISO 8601, decimals exact)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
