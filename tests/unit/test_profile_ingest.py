"""profile-ingest's pure parts: the process erases every store the gateway erases, and a
batch is applied in the records' order around tombstones."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

from services.profile_ingest.handlers import Erase, Record, Upsert, _runs, written_at
from shared.domain.profiles import ProfileWrite


def test_a_tombstone_erases_every_registered_store_the_profile_last() -> None:
    # In a process of its own: other tests import the gateway, which registers them too.
    names = subprocess.run(
        [sys.executable, "-c", "import services.profile_ingest.handlers\n"
         "from shared.adapters import erasure\n"
         "print(' '.join(s.name for s in erasure.registered()))"],
        check=True, capture_output=True, text=True).stdout.split()
    assert {"profile", "consent", "events", "contactHistory", "reactions",
            "trackedMessages"} <= set(names)
    assert names[-1] == "profile"


def test_upserts_run_together_between_tombstones_in_the_records_order() -> None:
    record = Record(b"t\x00p", b"{}", 1_700_000_000_123)
    at = written_at(record)
    assert at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)

    def upsert(profile_id: str) -> Upsert:
        return Upsert(record, "t", ProfileWrite(profile_id, False, {}, {}), at)

    a, b, c = upsert("a"), upsert("b"), upsert("c")
    erase = Erase(record, "t", "a")
    assert _runs([a, b, erase, c]) == [[a, b], erase, [c]]
    assert _runs([erase, erase]) == [erase, erase]
    assert _runs([]) == []
