"""The global control group (holdout): a stable share of a tenant's profiles that no live
marketing journey sends to, so that what its marketing as a whole brings can be measured
against them. A profile is held out when a hash of the tenant and its id falls under the
share, so it is the same profiles in every journey, on every engine and run; raising the
share keeps everyone already held out (5 % → 10 % adds profiles, removes none), lowering
it lets the last added back in. Transactional messages never look at it."""

from __future__ import annotations

from decimal import Decimal

from shared.domain.journeys.split import BUCKETS, bucket

MAX_PERCENT = Decimal(50)


def held_out(tenant: str, profile_id: str, percent: Decimal | float) -> bool:
    """Whether the profile is in the tenant's control group of ``percent`` % (hundredths
    of a percent count: 2.5 % is 250 buckets of 10,000)."""
    if percent <= 0:
        return False
    # the journey, version and node of a split's key are fixed here: one draw per profile
    return bucket(tenant, "\x00holdout", 0, "", profile_id) < int(
        Decimal(str(percent)) * BUCKETS / 100)
