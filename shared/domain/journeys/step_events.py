"""Step events as they travel on ``parcours.journey-steps.v3``: every step of every journey
instance (entered, transition, actionSent, actionExcluded with the rule, reaction, event,
timedOut, split, finished, stopped, exited, error, profileUpdated, httpCalled, httpFailed),
for whatever counts or analyses them downstream. The engine writes them to
``journey_steps`` in the transaction of each move; a relay publishes them from there in
commit order, each once or, after a crash, again with the same ``stepId``.

A record is one or more consecutive steps (``steps``, in commit order) of one or more
instances (``members``): a profile's own steps have one member; the steps of profiles
entered together (a cohort's, set-wise entering) have their members in records of at
most ``MEMBERS_PER_RECORD``, each record's members all of one partition of the topic
(keyed by its first member's profile id), so a profile's steps, its cohort's and its own,
come in order on one partition. Version 2 had a step a record: a cohort's member list
went to the broker once for each of its steps (three entering), the larger part of the
engine's and the broker's work when a million profiles enter (README, P7J)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MEMBERS_PER_RECORD = 1000  # a record well under Kafka's 1 MB whatever the ids' lengths
STEPS_PER_RECORD = 100  # a move writes a handful; the bound keeps a record's size known


class StepMember(BaseModel):
    """An instance the steps are of."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    instanceId: str
    profileId: str


class Step(BaseModel):
    """One step: a member's step is (stepId, instanceId)."""

    # Additive within a version: a consumer not yet upgraded ignores newer fields.
    model_config = ConfigDict(extra="ignore", frozen=True)

    stepId: int = Field(description="unique per step, increasing within a transaction; a"
                                    " redelivered step has the same. The records of one"
                                    " step of many members share it")
    at: AwareDatetime
    kind: str = Field(description="entered, transition, actionSent, actionExcluded, reaction,"
                                  " event, timedOut, split, finished, stopped, exited, error, …")
    node: str = Field(description="where it happened (a transition's: where it came from)")
    detail: str = Field(description="a transition's next node, a message id, a reason,"
                        " a split's branch")


class StepEvent(BaseModel):
    """The record on ``parcours.journey-steps.v3``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[3] = 3
    tenant: str
    journeyId: str
    version: int
    steps: list[Step] = Field(
        min_length=1, max_length=STEPS_PER_RECORD,
        description="consecutive steps of the members, in commit order (each member went"
                    " through all of them)")
    members: list[StepMember] = Field(
        min_length=1, max_length=MEMBERS_PER_RECORD,
        description="the instances the steps are of, all keyed to this record's partition:"
                    " one for a profile's own steps, up to 1,000 for profiles that entered"
                    " together")
