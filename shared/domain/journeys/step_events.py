"""Step events as they travel on ``parcours.journey-steps.v1``: every step of every journey
instance (entered, transition, actionSent, actionExcluded with the rule, reaction, event,
timedOut, split, finished, stopped, exited, error, profileUpdated, httpCalled, httpFailed), keyed
by profile id, for whatever counts or analyses them downstream. The engine writes them to
``journey_steps`` in the transaction of each move; a relay publishes them from there in
commit order, each once or, after a crash, again with the same ``stepId``."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class StepEvent(BaseModel):
    """The record on ``parcours.journey-steps.v1``."""

    # Additive within a version: a consumer not yet upgraded ignores newer fields.
    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = 1
    stepId: int = Field(description="unique per step, increasing within a transaction;"
                                    " a redelivered step has the same. A step of profiles"
                                    " entered set-wise (a cohort's) has one per member,"
                                    " from 2^50 up (below 2^53)")
    tenant: str
    journeyId: str
    version: int
    instanceId: str
    profileId: str
    at: AwareDatetime
    kind: str = Field(description="entered, transition, actionSent, actionExcluded, reaction,"
                                  " event, timedOut, split, finished, stopped, exited, error, …")
    node: str = Field(description="where it happened (a transition's: where it came from)")
    detail: str = Field(description="a transition's next node, a message id, a reason,"
                        " a split's branch")
