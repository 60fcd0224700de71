"""R7: a poison record reaches the dead-letter topic after at most 3 tries, and the
records beside it are handled (shared/batches.handle_isolating_poison; on the real stack:
test_reliability.py, test_event_values.py, tests/faults)."""

from collections import Counter
from collections.abc import Sequence

from shared.batches import handle_isolating_poison


async def test_a_poison_record_is_dead_lettered_after_at_most_three_tries() -> None:
    tries: Counter[str] = Counter()
    handled: list[str] = []
    dead: list[tuple[str, str]] = []

    async def handle_batch(records: Sequence[str]) -> None:
        tries.update(records)
        if "poison" in records:
            raise ValueError("cannot handle it")
        handled.extend(records)

    async def on_poison(record: str, reason: str) -> None:
        dead.append((record, reason))

    batch = ["a", "b", "poison", "c"]
    await handle_isolating_poison(batch, handle_batch, on_poison)
    assert dead == [("poison", "error: ValueError: cannot handle it")]
    assert tries["poison"] <= 3
    assert sorted(handled) == ["a", "b", "c"]
