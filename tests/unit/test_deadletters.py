"""Dead letters, the pure parts: what a letter keeps of its record, which stage's letters
replay where (signed inputs only, never re-signed), filters, ids and windows."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from services.cli import deadletters as cli
from shared.domain.deadletter import (
    REPLAYED_FROM_HEADER,
    STAGE_INPUTS,
    DeadLetter,
    Filter,
    Replay,
    Skip,
    Source,
    dead_letter,
    is_replay,
    parse_id,
    plan_replay,
)
from shared.topics import ALL_TOPICS, EVENTS_IN, EVENTS_KAFKA, PROFILES, SEND_EMAIL_TX

SIGNED = [("parcours-key-id", b"abcdefghijkl"), ("parcours-signature", b"0f" * 32)]


def letter(stage: str = "processor", topic: str | None = EVENTS_KAFKA.name,
           headers: list[tuple[str, bytes]] | None = None, original: bytes = b'{"a":1}',
           reason: str = "unknown_event: event EVTx is not published", at: float = 100.0
           ) -> DeadLetter:
    source = None if topic is None else Source(topic, SIGNED if headers is None else headers,
                                               42.5)
    return dead_letter(stage, reason, original, at, source)


def test_a_letter_keeps_the_records_topic_headers_and_timestamp_and_reads_back() -> None:
    kept = letter()
    assert kept.topic == EVENTS_KAFKA.name and kept.timestamp == 42.5
    assert kept.headers == [("parcours-key-id", "abcdefghijkl"),
                            ("parcours-signature", "0f" * 32)]
    assert DeadLetter.model_validate_json(kept.model_dump_json()) == kept


def test_a_letter_without_a_source_is_written_as_before() -> None:
    assert dead_letter("reactions", "invalid: 1 errors", b"x", 1.0).model_dump(
        exclude_none=True) == {"v": 1, "stage": "reactions", "reason": "invalid: 1 errors",
                               "original": "x", "at": 1.0}


def test_a_signed_record_replays_to_its_topic_as_it_was_plus_the_replay_header() -> None:
    plan = plan_replay(letter(), b"ada@example.com", "2:17")
    assert plan == Replay(EVENTS_KAFKA.name, b"ada@example.com", b'{"a":1}',
                          [*SIGNED, (REPLAYED_FROM_HEADER, b"2:17")], 42500)


def test_a_replay_of_a_replay_names_only_the_latest_letter() -> None:
    again = letter(headers=[*SIGNED, (REPLAYED_FROM_HEADER, b"2:17")])
    plan = plan_replay(again, None, "0:5")
    assert isinstance(plan, Replay)
    assert [v for n, v in plan.headers if n == REPLAYED_FROM_HEADER] == [b"0:5"]


def test_a_profile_tombstone_replays_as_a_tombstone() -> None:
    plan = plan_replay(letter("profile-ingest", PROFILES.name, original=b""), b"k", "1:1")
    assert isinstance(plan, Replay) and plan.value is None


@pytest.mark.parametrize(("kept", "why"), [
    (letter(topic=EVENTS_IN.name, headers=[]), "is not signed"),
    (letter("sender-email", SEND_EMAIL_TX.name, headers=[]), "is not signed"),
    (letter(headers=[]), "no signature kept"),
    (letter(topic=None), "no source topic kept"),
    (letter("sender-email", EVENTS_KAFKA.name), "is not an input of stage sender-email"),
    (letter("nobody"), "unknown stage"),
    (letter(original=b'{"a":"\xff"}'), "not UTF-8"),
])
def test_what_is_not_replayed_says_why(kept: DeadLetter, why: str) -> None:
    plan = plan_replay(kept, b"k", "0:1")
    assert isinstance(plan, Skip) and why in plan.why, plan


def test_an_old_letter_of_a_one_topic_stage_replays_to_that_topic() -> None:
    old = DeadLetter(stage="profile-ingest", reason="x", original="{}", at=1.0,
                     headers=[("parcours-key-id", "abcdefghijkl")])
    plan = plan_replay(old, b"k", "0:1")
    assert isinstance(plan, Replay) and plan.topic == PROFILES.name
    assert plan.timestamp_ms is None  # the broker stamps it


def test_every_stage_input_is_a_topic_of_the_catalogue() -> None:
    names = {t.name for t in ALL_TOPICS}
    assert all(set(inputs) <= names for inputs in STAGE_INPUTS.values())
    assert {"processor", "profile-ingest", "journeys", "reactions", "sender-email",
            "sender-email-bulk", "sender-sms-bulk", "sender-push"} <= set(STAGE_INPUTS)


def test_filters_select_by_stage_reason_key_and_time() -> None:
    kept = letter(at=100.0)
    assert Filter(50, 150).selects(kept, None)
    assert not Filter(101, 150).selects(kept, None)
    assert not Filter(0, 99).selects(kept, None)
    assert Filter(0, 150, stage="processor").selects(kept, b"k")
    assert not Filter(0, 150, stage="journeys").selects(kept, b"k")
    assert Filter(0, 150, reason="NOT PUBLISHED").selects(kept, b"k")
    assert not Filter(0, 150, reason="invalid").selects(kept, b"k")
    assert Filter(0, 150, key="ada@").selects(kept, b"ada@example.com")
    assert not Filter(0, 150, key="ada@").selects(kept, None)


def test_ids_are_partition_colon_offset() -> None:
    assert parse_id("2:1234") == (2, 1234)
    for bad in ("2", "a:1", "1:-3", ":4"):
        with pytest.raises(ValueError):
            parse_id(bad)


def test_the_window_is_last_before_until_unless_since_is_given() -> None:
    until = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
    args = argparse.Namespace(since=None, until=until, last=timedelta(hours=1), stage="p",
                              reason=None, key=None)
    chosen = cli.window(args, now=0.0)
    assert (chosen.since, chosen.until, chosen.stage) == (
        until.timestamp() - 3600, until.timestamp(), "p")
    args.since, args.until = until - timedelta(days=2), None
    assert cli.window(args, now=5e9) == Filter((until - timedelta(days=2)).timestamp(), 5e9,
                                               "p")


def test_a_replayed_record_is_told_by_its_header() -> None:
    plan = plan_replay(letter(), b"k", "1:2")
    assert isinstance(plan, Replay) and is_replay(plan.headers)
    assert not is_replay(SIGNED)
