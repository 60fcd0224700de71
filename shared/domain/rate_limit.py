"""Token buckets: ``rate`` requests a second, bursts up to ``burst`` (per API key, per
client address for failed authentications)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    tokens: float
    at: float  # when ``tokens`` was counted (monotonic seconds)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: int  # whole seconds until a token is there, for ``Retry-After``


def take(bucket: Bucket | None, now: float, rate: float, burst: float) -> tuple[Bucket, Verdict]:
    tokens = burst if bucket is None else min(burst, bucket.tokens + (now - bucket.at) * rate)
    if tokens >= 1:
        return Bucket(tokens - 1, now), Verdict(True, 0)
    return Bucket(tokens, now), Verdict(False, max(1, math.ceil((1 - tokens) / rate)))


def available(bucket: Bucket | None, now: float, rate: float, burst: float,
              need: float = 1) -> bool:
    """Whether the bucket holds ``need`` tokens now (``take`` allows one at 1), untouched."""
    return bucket is None or min(burst, bucket.tokens + (now - bucket.at) * rate) >= need
