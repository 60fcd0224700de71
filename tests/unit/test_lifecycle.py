import pytest

from shared.domain.events import EventConfig
from shared.domain.lifecycle import (
    EventState,
    LifecycleError,
    MessageState,
    check_delete,
    check_pause,
    check_publish_event,
    check_publish_message,
    check_resume,
    check_unpublish_event,
    check_unpublish_message,
    check_update,
    edit_target,
)

EMAIL = EventConfig(event_id="EVTa", label="a", channel="email", targeting="event")


def test_a_published_event_can_be_neither_changed_nor_deleted() -> None:
    with pytest.raises(LifecycleError, match="unpublish"):
        check_update(EMAIL, EventState.PUBLISHED, EMAIL.model_copy(update={"label": "b"}))
    with pytest.raises(LifecycleError, match="unpublish"):
        check_delete(EventState.PUBLISHED)
    check_delete(EventState.UNPUBLISHED)
    check_delete(EventState.DRAFT)


@pytest.mark.parametrize("change", [{"channel": "sms"}, {"targeting": "profile"}])
def test_channel_and_targeting_never_change(change: dict[str, str]) -> None:
    with pytest.raises(LifecycleError, match="fixed"):
        check_update(EMAIL, EventState.DRAFT, EMAIL.model_copy(update=change))


def test_label_and_fields_change_while_not_published() -> None:
    check_update(EMAIL, EventState.UNPUBLISHED, EMAIL.model_copy(update={"label": "b"}))


def test_event_publication_goes_back_and_forth() -> None:
    check_publish_event(EventState.DRAFT)
    check_publish_event(EventState.UNPUBLISHED)
    check_unpublish_event(EventState.PUBLISHED)
    with pytest.raises(LifecycleError):
        check_publish_event(EventState.PUBLISHED)
    with pytest.raises(LifecycleError):
        check_unpublish_event(EventState.DRAFT)


def test_editing_a_published_message_opens_a_new_draft() -> None:
    assert edit_target(MessageState.DRAFT) == "update"
    assert edit_target(MessageState.PUBLISHED) == "new_version"
    assert edit_target(None) == "new_version"


def test_only_a_draft_is_published_and_only_a_live_message_unpublished() -> None:
    check_publish_message(MessageState.DRAFT)
    with pytest.raises(LifecycleError):
        check_publish_message(MessageState.PUBLISHED)
    check_unpublish_message(MessageState.PUBLISHED)
    check_unpublish_message(MessageState.PAUSED)
    with pytest.raises(LifecycleError):
        check_unpublish_message(MessageState.DRAFT)


@pytest.mark.parametrize("channel", ["email", "sms", "push"])
def test_the_default_template_compiles_and_shows_every_field(channel: str) -> None:
    from shared.domain.default_templates import default_template
    from shared.domain.rendering import compile_message, render_message, template_context

    config = EventConfig.model_validate({
        "event_id": "EVTa", "label": "Cart", "channel": channel, "targeting": "event",
        "fields": [{"id": "url", "type": "string"}],
        "collections": [{"id": "items", "fields": [{"id": "name", "type": "string"}]}],
    })
    compiled = compile_message(config.channel, default_template(config))
    rendered = render_message(compiled, template_context(
        {"url": "https://x", "items": [{"name": "shoes"}]}, None, {}))
    text = " ".join(rendered.parts.values())
    assert "https://x" in text and "shoes" in text


def test_only_a_published_message_pauses_and_only_a_paused_one_resumes() -> None:
    check_pause(MessageState.PUBLISHED)
    check_resume(MessageState.PAUSED)
    for state in (MessageState.PAUSED, MessageState.DRAFT, None):
        with pytest.raises(LifecycleError):
            check_pause(state)
    for state in (MessageState.PUBLISHED, MessageState.DRAFT, None):
        with pytest.raises(LifecycleError):
            check_resume(state)
