"""JSON Schemas of the topic payloads and of conditions, generated from the models that
read and write them.

``python -m shared.schemas`` rewrites ``schemas/``; a unit test fails when the
committed files drift from the models, so the documented contract is the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from shared.domain.conditions import Condition
from shared.domain.deadletter import DeadLetter
from shared.domain.events import TriggerEvent
from shared.domain.journeys.definition import JourneyDefinition
from shared.domain.journeys.journey_events import JourneyEventRecord, ProducedJourneyEvent
from shared.domain.journeys.step_events import StepEvent
from shared.domain.produced import ProducedEvent
from shared.domain.profile_records import ProfileRecord
from shared.domain.reactions import Reaction
from shared.domain.routing import SendRequest
from shared.domain.webhook_payloads import Notification
from shared.topics import ALL_TOPICS

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"
MODELS: dict[str, type[BaseModel]] = {
    "topics/events.in.v1.json": TriggerEvent,
    "topics/events.kafka.v1.json": ProducedEvent,
    "topics/send.v2.json": SendRequest,
    "topics/deadletter.v1.json": DeadLetter,
    "topics/profiles.v1.json": ProfileRecord,
    "topics/reactions.v1.json": Reaction,
    "conditions.v1.json": Condition,
    "webhooks/notification.v1.json": Notification,
    "journeys/definition.v1.json": JourneyDefinition,
    "topics/journey-events.v1.json": JourneyEventRecord,
    "topics/journey-steps.v3.json": StepEvent,
    "topics/journey-events.kafka.v1.json": ProducedJourneyEvent,
}


def render_schema(path: str) -> str:
    topics = sorted(t.name for t in ALL_TOPICS if t.schema == path)
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://parcours.dev/schemas/{path}",
        **({"x-topics": topics} if topics else {}),
        **MODELS[path].model_json_schema(mode="serialization"),
    }
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def main() -> None:
    for path in MODELS:
        target = SCHEMAS_DIR / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_schema(path))
        print(f"wrote {target.relative_to(SCHEMAS_DIR.parent)}")


if __name__ == "__main__":
    main()
