"""What an administrator may do to an event configuration and its message, and when.

Pure rules; the admin API turns a refusal into 409 with this text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.domain.events import EventConfig


class LifecycleError(Exception):
    """An action not allowed in the current state; the text says what to do instead."""


class EventState(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    UNPUBLISHED = "unpublished"


class MessageState(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    PAUSED = "paused"
    UNPUBLISHED = "unpublished"
    SUPERSEDED = "superseded"  # an earlier published version, replaced by a newer one


@dataclass(frozen=True)
class PublishedEvent:
    """A published event configuration with its live message, as the gateway, the
    processor and the senders read it."""

    config: EventConfig
    message_version: int | None
    message_state: MessageState | None  # of the live version: published or paused
    template: dict[str, Any] | None


def check_update(current: EventConfig, state: EventState, new: EventConfig) -> None:
    if state is EventState.PUBLISHED:
        raise LifecycleError("unpublish the event before changing its configuration")
    for fixed in ("channel", "targeting"):
        if getattr(new, fixed) != getattr(current, fixed):
            raise LifecycleError(f"{fixed} is fixed when the event is created; "
                                 "create another event instead")


def check_delete(state: EventState) -> None:
    if state is EventState.PUBLISHED:
        raise LifecycleError("a published event cannot be deleted; unpublish it first")


def check_publish_event(state: EventState) -> None:
    if state is EventState.PUBLISHED:
        raise LifecycleError("the event is already published")


def check_unpublish_event(state: EventState) -> None:
    if state is not EventState.PUBLISHED:
        raise LifecycleError("only a published event can be unpublished")


def edit_target(latest: MessageState | None) -> str:
    """Editing changes the draft in place, or opens a new draft version while the
    published one keeps sending."""
    return "update" if latest is MessageState.DRAFT else "new_version"


def check_publish_message(latest: MessageState | None) -> None:
    if latest is not MessageState.DRAFT:
        raise LifecycleError("there is no draft to publish; edit the message first")


def check_pause(live: MessageState | None) -> None:
    if live is not MessageState.PUBLISHED:
        raise LifecycleError("only a published message can be paused")


def check_resume(live: MessageState | None) -> None:
    if live is not MessageState.PAUSED:
        raise LifecycleError("the message is not paused")


def check_unpublish_message(live: MessageState | None) -> None:
    if live not in (MessageState.PUBLISHED, MessageState.PAUSED):
        raise LifecycleError("the message is not published")
