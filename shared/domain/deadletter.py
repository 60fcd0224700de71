"""Dead letters: a record no stage could handle, kept whole with the stage and the reason."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

_NAMED_ERRORS = 5  # enough to fix a record; a reason is also a status's reason, kept short


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


def invalid_reason(error: ValidationError) -> str:
    """``invalid: ctx.price: Input should be a valid decimal; email: Field required``."""
    errors = error.errors(include_url=False, include_input=False, include_context=False)
    named = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
             for e in errors[:_NAMED_ERRORS]]
    more = len(errors) - _NAMED_ERRORS
    return "invalid: " + "; ".join(named) + (f"; and {more} more" if more > 0 else "")
