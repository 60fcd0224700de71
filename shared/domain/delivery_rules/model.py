"""Delivery rules as administrators write them (JSON on the admin API).

Tenant-wide: *fatigue* (at most N contacts per profile per channel, or across channels, in
a sliding period) and *quiet hours* (per channel, in the recipient's time zone). Grouped in
*typologies* attached to messages, in their execution order: *filtering* (exclude whom a
condition matches), *capacity* (at most N messages of this message or channel per period,
tenant-wide) and *control* (checks on the rendered message, run by the sender). Always on,
before all of them: the denylist, quarantine and consent (``decide``).

Rule ids are given by the store (``r1``, ``r2``…), never typed by users; metrics are
labelled by rule *kind* only, so their labels stay a bounded set.
"""

from __future__ import annotations

from datetime import time, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.domain.conditions import Condition


class RuleKind(StrEnum):
    DENYLIST = "denylist"
    QUARANTINE = "quarantine"
    CONSENT = "consent"
    FILTERING = "filtering"
    CAPACITY = "capacity"
    CONTROL = "control"
    FATIGUE = "fatigue"
    QUIET_HOURS = "quietHours"


TYPOLOGY_KINDS = (RuleKind.FILTERING, RuleKind.CAPACITY, RuleKind.CONTROL)
CHANNELS = ("email", "sms", "push")
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Channel = Literal["email", "sms", "push"]
Period = Annotated[timedelta, Field(gt=timedelta(0), le=timedelta(days=366),
                                    description="ISO 8601 duration (P7D, PT12H) or seconds")]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    enabled: bool = True


class FilteringRule(_Rule):
    """Excludes the profiles the condition matches (true, not unknown: a profile without a
    birth date is not "under 18")."""

    kind: Literal["filtering"] = "filtering"
    condition: Condition


class CapacityRule(_Rule):
    """At most ``max`` messages in ``period``, tenant-wide, of the message this typology
    is attached to (``scope: message``) or of its channel (``scope: channel``). At the
    cap a message is dropped, or (``atCap: defer``) deferred to the first instant one
    more fits; a journey's message is always deferred, never dropped."""

    kind: Literal["capacity"] = "capacity"
    max: int = Field(ge=0)
    period: Period
    scope: Literal["message", "channel"] = "message"
    atCap: Literal["drop", "defer"] = "drop"


ControlCheck = Literal["subjectPresent", "noUnrenderedTags", "maxBytes", "absoluteLinks",
                       "httpsLinks"]


class ControlRule(_Rule):
    """Checks on the rendered message, in the sender, before hand-over."""

    kind: Literal["control"] = "control"
    checks: tuple[ControlCheck, ...] = Field(min_length=1)
    maxBytes: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _size(self) -> ControlRule:
        if ("maxBytes" in self.checks) != (self.maxBytes is not None):
            raise ValueError("maxBytes is given exactly when the checks include maxBytes")
        return self


TypologyRule = Annotated[FilteringRule | CapacityRule | ControlRule, Field(discriminator="kind")]


class FatigueRule(_Rule):
    """At most ``max`` contacts per profile in any ``period`` on ``channels`` (counted
    together; every channel when empty). ``maxFrom`` reads the cap from a profile path
    (``attributes.weeklyEmails``), ``max`` being the default when the profile has none.
    Transactional messages are counted, and capped only with ``transactional: capped``.
    At the cap a message is dropped, or deferred to the first instant it fits."""

    kind: Literal["fatigue"] = "fatigue"
    channels: tuple[Channel, ...] = ()
    max: int = Field(ge=0)
    maxFrom: Annotated[str, StringConstraints(pattern=r"^attributes\.[A-Za-z][A-Za-z0-9_]{0,63}$")
                       ] | None = None
    period: Period
    transactional: Literal["exempt", "capped"] = "exempt"
    atCap: Literal["drop", "defer"] = "drop"


class QuietHoursRule(_Rule):
    """No message on ``channels`` between ``start`` and ``end`` local time (the profile's
    ``timeZone``, else the tenant's); a message due then waits for ``end``: deferred, never
    dropped. Transactional messages go anyway unless ``transactional: applies``."""

    kind: Literal["quietHours"] = "quietHours"
    channels: tuple[Channel, ...] = Field(min_length=1)
    start: time
    end: time
    transactional: Literal["exempt", "applies"] = "exempt"


TenantRule = Annotated[FatigueRule | QuietHoursRule, Field(discriminator="kind")]
AnyRule = Annotated[FilteringRule | CapacityRule | ControlRule | FatigueRule | QuietHoursRule,
                    Field(discriminator="kind")]
