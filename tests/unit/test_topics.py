from pathlib import Path

from shared.topics import ALL_TOPICS, SEND_TX_TOPICS

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_topic_names_are_unique_and_versioned() -> None:
    names = [t.name for t in ALL_TOPICS]
    assert len(names) == len(set(names))
    assert all(n.startswith("parcours.") and n.rsplit(".", 1)[-1].startswith("v") for n in names)


def test_every_topic_has_partitions_and_a_schema_file() -> None:
    for topic in ALL_TOPICS:
        assert topic.partitions >= 1
        assert (SCHEMAS / topic.schema).is_file(), topic.schema


def test_every_channel_has_a_transactional_topic() -> None:
    assert set(SEND_TX_TOPICS) == {"email", "sms", "push"}


def test_committed_schemas_match_the_models() -> None:
    from shared.schemas import MODELS, render_schema

    for path in MODELS:
        committed = (SCHEMAS / path).read_text()
        assert committed == render_schema(path), f"run `python -m shared.schemas` ({path})"
