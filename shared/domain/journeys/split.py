"""The random split (experiment) node's assignment: a profile's branch is a hash of the
tenant, the journey, its version, the node and the profile, so redelivery, a redo after a
lost race, an engine restart or a re-entry into the same version all give the same branch
(no coin flipped again), while another version or another split node draws anew."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, TypeVar

BUCKETS = 10_000  # weights are whole percents: 100 buckets a percent


class Weighted(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def weight(self) -> int: ...


W = TypeVar("W", bound=Weighted)


def bucket(tenant: str, journey_id: str, version: int, node: str, profile_id: str) -> int:
    """0 … BUCKETS-1, uniform, the same on every machine and run (sha256, not ``hash``,
    which Python salts per process)."""
    key = "\x00".join((tenant, journey_id, str(version), node, profile_id)).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % BUCKETS


def choose(branches: Sequence[W], at: int) -> W:
    """The branch whose share of the buckets, in the order the branches are listed,
    holds bucket ``at`` (weights summing to 100; a weight of 0 is never chosen)."""
    upper = 0
    for branch in branches:
        upper += branch.weight * (BUCKETS // 100)
        if at < upper:
            return branch
    raise ValueError(f"bucket {at} is past the branches' weights ({upper // 100} %)")
