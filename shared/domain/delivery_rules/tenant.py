"""A tenant's delivery rules as stored, and the ``Rules`` one message passes.

Typologies: a message names one (its event configuration's ``typology``); a marketing
message that names none gets the tenant's default typology; a transactional one that names
none gets none (address and consent checks only). Disabled rules are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from shared.domain.audiences import profile_paths
from shared.domain.conditions import check_condition
from shared.domain.delivery_rules.decide import Filtering, Rules
from shared.domain.delivery_rules.model import (
    AnyRule,
    CapacityRule,
    ControlRule,
    FatigueRule,
    FilteringRule,
    QuietHoursRule,
)
from shared.domain.profile_schema import ProfileSchema

RULE = TypeAdapter(AnyRule)


class QuarantineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    softFailures: int = Field(default=5, ge=1, le=100,
                              description="soft failures that quarantine an address")
    softSpacing: timedelta = Field(default=timedelta(days=1), ge=timedelta(0),
                                   description="counted only this far apart")
    releaseAfter: timedelta = Field(default=timedelta(days=30), gt=timedelta(0))


class RuleSettings(BaseModel):
    """Per tenant: the time zone of profiles without one, and quarantine's thresholds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeZone: str = "UTC"
    quarantine: QuarantineSettings = QuarantineSettings()

    @field_validator("timeZone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"not an IANA time zone: {value!r}") from None
        return value


def rule_number(rule_id: str) -> int:
    """``r12`` → 12: rules apply in the order they were created."""
    return int(rule_id[1:]) if rule_id[1:].isdigit() else 0


@dataclass(frozen=True)
class Typology:
    typology_id: str
    name: str
    rule_ids: tuple[str, ...]
    is_default: bool = False


@dataclass(frozen=True)
class TenantRules:
    rules: dict[str, Any] = field(default_factory=dict)  # rule id → AnyRule
    typologies: dict[str, Typology] = field(default_factory=dict)
    settings: RuleSettings = field(default_factory=RuleSettings)

    @property
    def default_typology(self) -> str | None:
        return next((t.typology_id for t in self.typologies.values() if t.is_default), None)

    def typology_for(self, typology_id: str | None, transactional: bool) -> str | None:
        if typology_id is not None:
            return typology_id
        return None if transactional else self.default_typology

    def _typology_rules(self, typology_id: str | None) -> list[tuple[str, Any]]:
        typology = self.typologies.get(typology_id) if typology_id else None
        if typology is None:
            return []
        return [(rule_id, self.rules[rule_id]) for rule_id in typology.rule_ids
                if rule_id in self.rules and self.rules[rule_id].enabled]

    def controls(self, typology_id: str | None) -> list[tuple[str, ControlRule]]:
        """The control rules the sender runs, in the typology's order."""
        return [(i, r) for i, r in self._typology_rules(typology_id)
                if isinstance(r, ControlRule)]

    def for_message(self, typology_id: str | None, schema: ProfileSchema) -> Rules:
        """The rules a message of ``typology_id`` passes (``typology_for`` chose it).
        A filtering condition that no longer fits the profile schema (an attribute since
        removed) raises ConditionError, naming the path."""
        paths = profile_paths(schema)
        typology: list[tuple[str, Filtering | CapacityRule]] = []
        for rule_id, rule in self._typology_rules(typology_id):
            if isinstance(rule, FilteringRule):
                checked = check_condition(rule.condition, paths)
                typology.append((rule_id, Filtering(rule_id, rule.name, checked)))
            elif isinstance(rule, CapacityRule):
                typology.append((rule_id, rule))
        return Rules(typology=typology, fatigue=self.fatigue(), quiet_hours=self.quiet_hours())

    def _enabled(self) -> list[tuple[str, Any]]:
        return sorted(((i, r) for i, r in self.rules.items() if r.enabled),
                      key=lambda item: rule_number(item[0]))

    def fatigue(self) -> list[tuple[str, FatigueRule]]:
        """Tenant-wide: every message and journey of the tenant passes them."""
        return [(i, r) for i, r in self._enabled() if isinstance(r, FatigueRule)]

    def quiet_hours(self) -> list[tuple[str, QuietHoursRule]]:
        return [(i, r) for i, r in self._enabled() if isinstance(r, QuietHoursRule)]

    def time_zone(self, profile_zone: str | None) -> ZoneInfo:
        """The profile's zone when it names a known one, else the tenant's."""
        for name in (profile_zone, self.settings.timeZone):
            if name:
                try:
                    return ZoneInfo(name)
                except (ZoneInfoNotFoundError, ValueError):
                    continue
        return ZoneInfo("UTC")
