"""schemas/asyncapi.yaml agrees with the topic catalogue and the generated schemas."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.schemas import MODELS
from shared.topics import ALL_TOPICS

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
TOPICS = {t.name: t for t in ALL_TOPICS}


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((SCHEMAS / "asyncapi.yaml").read_text())
    return loaded


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def pointer(root: Any, fragment: str) -> Any:
    """The node at a JSON pointer (``/components/messages/x``); KeyError if absent."""
    node = root
    for part in filter(None, fragment.split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def resolve(ref: str) -> Any:
    path, _, fragment = ref.partition("#")
    root = json.loads((SCHEMAS / path).read_text()) if path else document()
    return pointer(root, fragment)


def test_it_is_an_asyncapi_3_document() -> None:
    assert document()["asyncapi"] == "3.0.0"
    assert {"info", "channels", "operations", "components"} <= set(document())


def test_every_ref_resolves_to_an_existing_file_or_node() -> None:
    found = list(refs(document()))
    assert any(not r.startswith("#") for r in found)
    for ref in found:
        path = ref.partition("#")[0]
        assert not path or (SCHEMAS / path).is_file(), f"{ref}: no such file"
        try:
            resolve(ref)
        except (KeyError, IndexError, TypeError):
            pytest.fail(f"{ref} does not resolve")


def test_every_channel_is_a_catalogued_topic_and_every_topic_is_documented() -> None:
    channels = document()["channels"].values()
    addresses = [c["address"] for c in channels]
    assert len(addresses) == len(set(addresses))
    assert set(addresses) == set(TOPICS)


def test_every_channel_has_its_topics_partitions_and_schema() -> None:
    for channel in document()["channels"].values():
        topic = TOPICS[channel["address"]]
        assert channel["bindings"]["kafka"]["partitions"] == topic.partitions, topic.name
        for message in channel["messages"].values():
            payload = resolve(message["$ref"])["payload"]
            assert payload["$ref"] in (topic.schema, f"./{topic.schema}"), topic.name
            assert topic.name in resolve(payload["$ref"])["x-topics"]


def test_every_message_documents_its_key() -> None:
    for name, message in document()["components"]["messages"].items():
        assert message["bindings"]["kafka"]["key"]["description"], name


def test_every_example_is_a_valid_record() -> None:
    examples = 0
    for message in document()["components"]["messages"].values():
        model = MODELS[message["payload"]["$ref"].removeprefix("./")]
        for example in message.get("examples", []):
            model.model_validate(example["payload"])
            examples += 1
    assert examples >= 2
