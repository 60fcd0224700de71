"""Request and response bodies of the admin API (camelCase, like the ingestion API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.adapters.admin_store import MessageVersion, StoredEvent
from shared.domain.events import EventConfig
from shared.domain.locale_tags import LocaleTag


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class EventOut(_Out):
    config: EventConfig
    state: str
    updated_at: datetime
    endpoint: str | None = Field(description="where the website posts this event, once"
                                 " published; none for a journey message (JMS…), which"
                                 " only its journeys send")
    json_schema: str | None = Field(description="the JSON Schema of the event's request"
                                    " body; none for a journey message")

    @classmethod
    def of(cls, stored: StoredEvent) -> EventOut:
        event_id = stored.config.event_id
        ingested = not stored.config.journey_message
        return cls(config=stored.config, state=stored.state.value,
                   updated_at=stored.updated_at,
                   endpoint=f"/v1/events/{event_id}" if ingested else None,
                   json_schema=f"/admin/v1/events/{event_id}/schema" if ingested else None)


class VersionOut(_Out):
    version: int
    state: str
    template: dict[str, Any]
    updated_at: datetime

    @classmethod
    def of(cls, version: MessageVersion) -> VersionOut:
        return cls(version=version.version, state=version.state.value,
                   template=version.template, updated_at=version.updated_at)


class MessageOut(_Out):
    event_id: str
    channel: str
    versions: list[VersionOut] = Field(description="newest first")


_LOCALE_IN = ("the locale variant to render, by the fallback chain (fr-CA, fr, the default);"
              " default: the test profile's locale")
_LOCALE_OUT = "the variant rendered; null: the default content"
_CHOSEN_FROM = "the locale wanted, normalised; null when none was"


class PreviewIn(_Out):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    profile_id: str | None = Field(
        default=None, description="a test profile; its sample event data fills ctx")
    ctx: dict[str, Any] = Field(default_factory=dict, description="overrides the sample data")
    version: int | None = Field(default=None, description="default: the newest version")
    locale: LocaleTag | None = Field(default=None, description=_LOCALE_IN)
    template: dict[str, Any] | None = Field(
        default=None, description="parts to render instead of a stored version (an editor's"
        " unsaved text, the console's live preview), checked as PUT …/message checks them:"
        " a 422 naming the part; nothing is stored")


class ProofIn(_Out):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    profile_id: str = Field(description="a test profile: the proof goes to its address")
    version: int | None = Field(default=None, description="default: the newest version")
    locale: LocaleTag | None = Field(default=None, description=_LOCALE_IN)


class ProofOut(_Out):
    version: int
    sent_to: str
    locale: str | None = Field(description=_LOCALE_OUT)
    chosen_from: str | None = Field(description=_CHOSEN_FROM)


class PreviewOut(_Out):
    version: int | None = Field(description="the version rendered; null for a given template")
    parts: dict[str, str]
    data: dict[str, str]
    locale: str | None = Field(description=_LOCALE_OUT)
    chosen_from: str | None = Field(description=_CHOSEN_FROM)
