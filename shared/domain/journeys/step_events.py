"""Step events as they travel on ``parcours.journey-steps.v2``: every step of every journey
instance (entered, transition, actionSent, actionExcluded with the rule, reaction, event,
timedOut, split, finished, stopped, exited, error, profileUpdated, httpCalled, httpFailed),
for whatever counts or analyses them downstream. The engine writes them to
``journey_steps`` in the transaction of each move; a relay publishes them from there in
commit order, each once or, after a crash, again with the same ``stepId``.

A record is one step of one or more instances (``members``): a profile's own step has one
member; a step of profiles entered together (a cohort's, set-wise entering) has its
members in records of at most ``MEMBERS_PER_RECORD``, each record's members all of one
partition of the topic (keyed by its first member's profile id), so a profile's steps,
its cohort's and its own, come in order on one partition as in version 1. Version 1
published one record a member: three records a profile entering, most of the engine's and
the broker's work when a million enter (README, P7J)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MEMBERS_PER_RECORD = 1000  # a record well under Kafka's 1 MB whatever the ids' lengths


class StepMember(BaseModel):
    """An instance the step is of."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    instanceId: str
    profileId: str


class StepEvent(BaseModel):
    """The record on ``parcours.journey-steps.v2``."""

    # Additive within a version: a consumer not yet upgraded ignores newer fields.
    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[2] = 2
    stepId: int = Field(description="unique per step, increasing within a transaction; a"
                                    " redelivered step has the same. The records of one"
                                    " step of many members share it: a member's step is"
                                    " (stepId, instanceId)")
    tenant: str
    journeyId: str
    version: int
    at: AwareDatetime
    kind: str = Field(description="entered, transition, actionSent, actionExcluded, reaction,"
                                  " event, timedOut, split, finished, stopped, exited, error, …")
    node: str = Field(description="where it happened (a transition's: where it came from)")
    detail: str = Field(description="a transition's next node, a message id, a reason,"
                        " a split's branch")
    members: list[StepMember] = Field(
        min_length=1, max_length=MEMBERS_PER_RECORD,
        description="the instances the step is of, all keyed to this record's partition:"
                    " one for a profile's own step, up to 1,000 for profiles that entered"
                    " together")
