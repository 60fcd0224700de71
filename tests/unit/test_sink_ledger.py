"""The sinks' bounded count of hand-overs by message id (shared/sink_ledger.py)."""

from shared.sink_ledger import HandedLog


def test_counts_forget_the_oldest_past_capacity_and_move_since() -> None:
    log = HandedLog(capacity=3)
    started = log.started
    for message_id in ("a", "b", "a", "c"):
        log.add(message_id)
    assert log.counts == {"a": 1, "b": 1, "c": 1}  # the first "a" forgotten
    assert log.duplicates() == {} and log.started >= started
    log.add("c")
    snapshot = log.snapshot("email")
    assert snapshot["counts"] == {"a": 1, "c": 2} and log.duplicates() == {"c": 2}
    assert snapshot["channel"] == "email"
    log.clear()
    assert log.counts == {} and log.snapshot("sms push")["counts"] == {}
