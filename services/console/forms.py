"""Forms into admin API bodies. Pure: no I/O. Inputs are named after the API's fields so
that a 422 naming ``fields.0.id`` lands beside the input ``fields.0.id``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
from starlette.datastructures import FormData

from shared.domain.exact import exact_json

CHANNEL_PARTS = {"email": ("subject", "html", "text"), "sms": ("text",),
                 "push": ("title", "body", "data")}
MAX_FIELD_ROWS = 200


class FormProblem(ValueError):
    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field, self.why = field, why


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def json_text(raw: str, field: str) -> Any:
    """Text the user typed as JSON, checked; decimals read exactly (19.90 stays 19.90)."""
    try:
        return json.loads(raw, parse_float=Decimal)
    except ValueError as error:
        raise FormProblem(field, f"not JSON: {error}") from error


def event_config(form: FormData) -> dict[str, Any]:
    """``POST /admin/v1/events``'s body from the new-event form: the field rows
    ``fields.N.id|type|label|required`` (a row without an id is an empty row, left out),
    collections as JSON."""
    body: dict[str, Any] = {"eventId": text(form, "eventId"), "label": text(form, "label"),
                            "channel": text(form, "channel"),
                            "targeting": text(form, "targeting"),
                            "marketing": form.get("marketing") == "on"}
    for optional in ("profileKey", "topic", "typology"):
        if value := text(form, optional):
            body[optional] = value
    body["fields"] = [row for row in field_rows(form) if row["id"]]
    if body["eventId"].startswith("JMS"):
        # a journey message goes to its journey's profile as marketing traffic: the API's
        # defaults, which an unticked box must not contradict
        body.pop("targeting")
        body["marketing"] = True
    if raw := text(form, "collections"):
        body["collections"] = json_text(raw, "collections")
    return body


def field_rows(form: FormData) -> list[dict[str, Any]]:
    """The rows ``fields.N.id|type|label|required`` as typed, empty ones included."""
    numbers = sorted({int(key.split(".")[1]) for key in form.keys()
                      if key.startswith("fields.") and key.count(".") == 2
                      and key.split(".")[1].isdigit()})[:MAX_FIELD_ROWS]
    return [{"id": text(form, f"fields.{n}.id"),
             "type": text(form, f"fields.{n}.type") or "string",
             "label": text(form, f"fields.{n}.label"),
             "required": form.get(f"fields.{n}.required") == "on"} for n in numbers]


def message_parts(form: FormData, channel: str) -> dict[str, Any]:
    """The message's parts as typed in the editor (a push's ``data`` is JSON)."""
    parts: dict[str, Any] = {}
    for part in CHANNEL_PARTS.get(channel, ()):
        value = form.get(f"template.{part}")
        raw = value if isinstance(value, str) else ""
        if part == "data":
            parts[part] = json_text(raw, "template.data") if raw.strip() else {}
        else:
            parts[part] = raw.replace("\r\n", "\n")
    return parts


def proof_recipient_body(form: FormData, text_fields: tuple[str, ...],
                      json_fields: tuple[str, ...]) -> bytes:
    """``PUT /admin/v1/test-profiles/{id}``'s body: the text fields given (an empty one is
    left out), and the JSON fields as typed, checked here but sent as their text, so a
    sample decimal keeps its digits (19.90 previews as 19.90)."""
    members = [orjson.dumps(key) + b":" + orjson.dumps(value)
               for key in text_fields if (value := text(form, key))]
    for key in json_fields:
        if raw := text(form, key):
            json_text(raw, key)
            members.append(orjson.dumps(key) + b":" + raw.encode())
    return b"{" + b",".join(members) + b"}"


def exact_json_text(value: Any) -> str:
    """JSON shown in a form: indented, decimals with their digits (19.90 stays 19.90)."""
    return exact_json(value, indent=True).decode()
