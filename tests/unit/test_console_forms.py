"""The console's forms into admin API bodies: rows into fields, JSON typed kept exact."""

from decimal import Decimal

import orjson
import pytest
from starlette.datastructures import FormData

from services.console.forms import (
    FormProblem,
    event_config,
    exact_json_text,
    message_parts,
    proof_recipient_body,
)


def test_field_rows_become_fields_and_empty_rows_are_left_out():
    form = FormData([("eventId", " EVTcart "), ("label", "Cart"), ("channel", "email"),
                     ("targeting", "profile"), ("fields.0.id", "cartUrl"),
                     ("fields.0.type", "string"), ("fields.0.required", "on"),
                     ("fields.1.id", ""), ("fields.2.id", "total"),
                     ("fields.2.type", "decimal"), ("collections", '[{"id": "p"}]')])
    body = event_config(form)
    assert body["eventId"] == "EVTcart" and body["marketing"] is False
    assert body["fields"] == [
        {"id": "cartUrl", "type": "string", "label": "", "required": True},
        {"id": "total", "type": "decimal", "label": "", "required": False}]
    assert body["collections"] == [{"id": "p"}]


def test_json_typed_wrong_names_its_field():
    with pytest.raises(FormProblem) as problem:
        event_config(FormData([("collections", "[{")]))
    assert problem.value.field == "collections"


def test_a_test_profiles_sample_is_sent_as_typed():
    form = FormData([("email", "a@example.com"), ("firstName", ""),
                     ("sampleCtx", '{"total": 19.90, "n": 1e25}')])
    body = proof_recipient_body(form, ("email", "firstName"), ("sampleCtx", "attributes"))
    assert body == b'{"email":"a@example.com","sampleCtx":{"total": 19.90, "n": 1e25}}'
    orjson.loads(body)  # valid JSON


def test_message_parts_per_channel_with_push_data_as_json():
    form = FormData([("template.title", "Hi"), ("template.body", "a\r\nb"),
                     ("template.data", '{"k": "{{ ctx.k }}"}')])
    assert message_parts(form, "push") == {"title": "Hi", "body": "a\nb",
                                           "data": {"k": "{{ ctx.k }}"}}
    assert message_parts(FormData([]), "push")["data"] == {}


def test_json_shown_in_a_form_keeps_decimal_digits():
    assert exact_json_text({"total": Decimal("19.90")}) == '{\n  "total": 19.90\n}'


def test_a_journey_message_takes_the_apis_defaults_not_an_unticked_box():
    body = event_config(FormData([("eventId", "JMSwelcome"), ("label", "w"),
                                  ("channel", "email"), ("targeting", "event")]))
    assert "targeting" not in body and body["marketing"] is True
