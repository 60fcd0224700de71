"""Locale variants: tags, the fallback chain, the choice, compiling and the request's locale."""

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.domain.events import (
    EventConfig,
    TriggerEvent,
    build_ingest_model,
    trigger_record,
)
from shared.domain.lifecycle import MessageState
from shared.domain.locale_tags import fallback_chain, normalise_tag
from shared.domain.locales import (
    LocaleChoice,
    choose_locale,
    compile_localised,
    split_template,
    wanted_locale,
)
from shared.domain.produced import Identified, Rejected, admit, build_produced_model
from shared.domain.rendering import RenderError, render_message, template_context
from shared.domain.routing import SendRequest, decide


@pytest.mark.parametrize(("tag", "normal"), [
    ("fr", "fr"), ("FR", "fr"), ("fr-ca", "fr-CA"), ("fr_CA", "fr-CA"),
    ("zh-hant-tw", "zh-Hant-TW"), ("es-419", "es-419"), ("de-CH-1996", "de-CH-1996"),
])
def test_tags_are_normalised(tag: str, normal: str) -> None:
    assert normalise_tag(tag) == normal


@pytest.mark.parametrize("tag", ["", "f", "french-language", "fr-", "fr CA", "fr-CA\n",
                                 "12", "fr-CA-x-y-z-w", "é"])
def test_what_is_not_a_tag_is_refused(tag: str) -> None:
    with pytest.raises(ValueError, match="not a locale tag"):
        normalise_tag(tag)


def test_the_chain_walks_back_to_the_language() -> None:
    assert fallback_chain("zh-hant-tw") == ["zh-Hant-TW", "zh-Hant", "zh"]
    assert fallback_chain("fr") == ["fr"]


@pytest.mark.parametrize(("wanted", "available", "choice"), [
    ("fr-CA", ["fr", "de"], LocaleChoice("fr", "fr-CA")),
    ("fr-CA", ["fr", "fr-CA"], LocaleChoice("fr-CA", "fr-CA")),
    ("FR-ca", ["fr-CA"], LocaleChoice("fr-CA", "fr-CA")),  # without regard to case
    ("fr_ca", ["fr"], LocaleChoice("fr", "fr-CA")),
    ("de", ["fr"], LocaleChoice(None, "de")),  # no variant: the default content
    ("fr", ["fr-CA"], LocaleChoice(None, "fr")),  # lookup, not a wider match
    (None, ["fr"], LocaleChoice(None, None)),
    ("", ["fr"], LocaleChoice(None, None)),
    ("not a tag", ["fr"], LocaleChoice(None, None)),
    ("fr", [], LocaleChoice(None, "fr")),
])
def test_the_variant_is_chosen_by_the_fallback_chain(
    wanted: str | None, available: list[str], choice: LocaleChoice
) -> None:
    assert choose_locale(wanted, available) == choice


def test_the_request_locale_wins_over_the_profile_one() -> None:
    assert wanted_locale("fr", {"locale": "de"}) == "fr"
    assert wanted_locale(None, {"locale": "de"}) == "de"
    assert wanted_locale(None, {"locale": None}) is None
    assert wanted_locale(None, None) is None


TEMPLATE = {
    "subject": "Hello {{ profile.first_name }}", "html": "<p>Hi</p>", "text": "Hi",
    "variants": {"fr": {"subject": "Bonjour {{ profile.first_name }}", "html": "<p>Salut</p>",
                        "text": "Salut"}},
}


def _subject(wanted: str | None) -> str:
    compiled, _ = compile_localised(EventConfig.model_validate(CONFIG).channel,
                                    TEMPLATE).choose(wanted)
    rendered = render_message(compiled, template_context({}, {"first_name": "Ada"}, {}))
    return rendered.parts["subject"]


CONFIG = {"eventId": "EVTwelcome", "label": "w", "channel": "email", "targeting": "event"}


def test_each_recipient_gets_their_variant() -> None:
    assert _subject("fr-CA") == "Bonjour Ada"
    assert _subject("de") == "Hello Ada"
    assert _subject(None) == "Hello Ada"


def test_split_keeps_the_default_apart() -> None:
    default, variants = split_template(TEMPLATE)
    assert "variants" not in default and list(variants) == ["fr"]
    assert split_template({"text": "x"}) == ({"text": "x"}, {})


def test_a_variant_template_error_names_the_variant_and_part() -> None:
    broken = {**TEMPLATE, "variants": {"fr": {"subject": "{% if %}"}}}
    with pytest.raises(RenderError, match=r"^variants\.fr\.subject: "):
        compile_localised(EventConfig.model_validate(CONFIG).channel, broken)
    with pytest.raises(RenderError, match=r"^variants\.fr\.title: not a part"):
        compile_localised(EventConfig.model_validate(CONFIG).channel,
                          {"variants": {"fr": {"title": "x"}}})


def test_an_event_request_may_name_its_locale_which_reaches_the_send_record() -> None:
    config = EventConfig.model_validate(CONFIG)
    model = build_ingest_model(config)
    request = model.model_validate_json('{"email": "a@b.co", "locale": "fr_ca"}')
    trigger = TriggerEvent.model_validate(trigger_record(
        request, pkey="k", tenant="t", event_id="EVTwelcome", accepted_at=1.0))
    assert trigger.locale == "fr-CA"
    sent = decide(config, MessageState.PUBLISHED, trigger, None, datetime.now(UTC), 1)
    assert isinstance(sent, SendRequest) and sent.locale == "fr-CA"
    plain = model.model_validate_json('{"email": "a@b.co"}')
    assert "locale" not in trigger_record(plain, pkey="k", tenant="t", event_id="EVTwelcome",
                                          accepted_at=1.0)
    with pytest.raises(ValidationError) as refused:
        model.model_validate_json('{"email": "a@b.co", "locale": "french!"}')
    assert refused.value.errors()[0]["loc"] == ("locale",)


def test_a_record_produced_to_kafka_may_name_its_locale_too() -> None:
    config = EventConfig.model_validate(CONFIG)
    record = {"tenant": "t", "eventId": "EVTwelcome", "eventKey": "o-1",
              "email": "a@b.co", "locale": "FR-ca"}
    trigger = admit(json.dumps(record).encode(), Identified("t", "EVTwelcome", "k"),
                    build_produced_model(config), 1.0)
    assert isinstance(trigger, TriggerEvent) and trigger.locale == "fr-CA"
    refused = admit(json.dumps({**record, "locale": "x"}).encode(),
                    Identified("t", "EVTwelcome", "k"), build_produced_model(config), 1.0)
    assert isinstance(refused, Rejected) and "locale" in refused.reason
