"""Many status writes in one statement keep one per pKey: the highest-ranked, the first of
equals — what writing them one by one (each only moving an event forward) leaves."""

from __future__ import annotations

from shared.adapters.status_store import upsert_columns
from shared.domain.status import RANK, Status, StatusWrite


def test_one_write_per_pkey_the_highest_ranked_first_of_equals() -> None:
    writes = [StatusWrite("a", "t", "E", Status.PROCESSING),
              StatusWrite("b", "t", "E", Status.PROCESSED, None, "m-b"),
              StatusWrite("a", "t", "E", Status.PROCESSED, None, "m-a"),
              StatusWrite("b", "t", "E", Status.DELIVERY_FAILED, "late")]
    pkeys, tenants, events, statuses, ranks, reasons, messages = upsert_columns(writes)
    assert pkeys == ["a", "b"] and statuses == ["processed", "processed"]
    assert ranks == [RANK[Status.PROCESSED]] * 2 and reasons == [None, None]
    assert messages == ["m-a", "m-b"] and tenants == ["t", "t"] and events == ["E", "E"]


def test_no_writes_are_empty_columns() -> None:
    assert upsert_columns([]) == [[]] * 7
