"""Dead letters: a record no stage could handle, kept whole with the stage and the reason."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DeadLetter(BaseModel):
    """The record on ``parcours.deadletter.v1``; ``original`` can be replayed as is."""

    model_config = ConfigDict(extra="forbid")

    v: int = 1
    stage: str
    reason: str
    original: str
    at: float


def dead_letter(stage: str, reason: str, raw: bytes, at: float) -> DeadLetter:
    return DeadLetter(stage=stage, reason=reason, original=raw.decode(errors="replace"), at=at)
