"""The record a recipient's rules see, as conditions name its paths (``city``,
``attributes.<name>``, ``consent.<channel>.marketing``, ``topics.<id>.subscribed``), built
from the profile as the processor holds it (columns and attributes side by side, as
``profile_store.as_profile`` gives them) and its consent rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.domain.consent import BLOCKED, CHANNELS, SUBSCRIBED, ConsentKind, Marketing
from shared.domain.profile_schema import BUILT_INS

_COLUMNS = frozenset({"profile_id", *BUILT_INS.values()})


def condition_record(profile: Mapping[str, Any],
                     consent_rows: Iterable[tuple[str, str, str]]) -> dict[str, Any]:
    """``consent_rows``: (kind, name, value) as the consents table holds them."""
    consent = {c: {"marketing": Marketing.UNKNOWN.value, "blocked": False} for c in CHANNELS}
    topics: dict[str, dict[str, bool]] = {}
    for kind, name, value in consent_rows:
        if kind == ConsentKind.MARKETING and name in consent:
            consent[name]["marketing"] = value
        elif kind == ConsentKind.BLOCK and name in consent:
            consent[name]["blocked"] = value == BLOCKED
        elif kind == ConsentKind.TOPIC:
            topics[name] = {"subscribed": value == SUBSCRIBED}
    record: dict[str, Any] = {"profileId": profile.get("profile_id")}
    for name, column in BUILT_INS.items():
        record[name] = profile.get(column)
    record["attributes"] = {k: v for k, v in profile.items() if k not in _COLUMNS}
    record["consent"] = consent
    record["topics"] = topics
    return record
