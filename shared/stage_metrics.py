"""One histogram of the chain's stages (``shared.domain.timeline``), exported by the
processor and the senders, each for the stages it sees: how long a message spent since
the stage before. The ``stage`` label takes ``timeline.STAGES`` values only."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Histogram

from shared.domain import timeline

STAGE_SECONDS = Histogram(
    "parcours_message_stage_seconds",
    "A transactional message's time in each stage of the chain, since the stage before it"
    " (consumed: since accepted by the gateway; settled: since handed over)",
    ["stage"], buckets=timeline.BUCKETS)


# Bound once: ``labels()`` costs about a microsecond a call.
_CHILDREN = {stage: STAGE_SECONDS.labels(stage) for stage in timeline.STAGES[1:]}
_INDEX = {stage: i for i, stage in enumerate(timeline.STAGES)}


def observe(marks: Sequence[float], stages: Sequence[str]) -> None:
    """Observe ``stages`` (a subset of the stages after the first) from a message's marks
    (``timeline.STAGES`` order); a stage with a mark missing (NaN) is left out."""
    for stage in stages:
        i = _INDEX[stage]
        if i < len(marks):
            seconds = marks[i] - marks[i - 1]
            if seconds == seconds:  # not NaN
                _CHILDREN[stage].observe(seconds if seconds > 0 else 0.0)


def observe_one(stage: str, seconds: float) -> None:
    _CHILDREN[stage].observe(seconds if seconds > 0 else 0.0)
