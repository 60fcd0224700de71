"""The verdicts of ``parcours reconcile`` (shared/domain/reconcile.py), one case each."""

from shared.domain.reconcile import (
    Accepted,
    Decided,
    Handed,
    LedgerRow,
    MessageSources,
    Recorded,
    Sources,
    message_table,
    reconcile,
    reconcile_messages,
    table,
)

NOW, GRACE = 10_000.0, 60.0
OLD, YOUNG = NOW - 600, NOW - 5


def _event(pkey: str, at: float = OLD) -> Accepted:
    return Accepted(pkey, "t1", "EVTx", at, "parcours.events.in.v1")


def _sources(**kwargs: object) -> Sources:
    base: dict[str, object] = {"statuses": {}, "ledger": {}}
    base.update(kwargs)
    return Sources(**base)  # type: ignore[arg-type]


def test_terminal_statuses_end_whatever_their_age() -> None:
    sources = _sources(statuses={"a": Recorded("processed", "m1"),
                                 "b": Recorded("excluded", None, "fatigue"),
                                 "c": Recorded("ignored", None)},
                       ledger={"m1": LedgerRow("sent", 1, "email")})
    report = reconcile([_event("a"), _event("b", YOUNG), _event("c")], sources, NOW, GRACE)
    assert report.ended == {"processed": 1, "excluded": 1, "ignored": 1}
    assert report.clean and report.counts()["ended"] == 3


def test_no_trace_is_lost_only_past_the_grace_period() -> None:
    report = reconcile([_event("old"), _event("young", YOUNG)], _sources(), NOW, GRACE)
    assert [lost.pkey for lost in report.lost] == ["old"]
    assert report.waiting == {"in flight": 1} and not report.clean


def test_legitimate_holds_wait_and_overdue_ones_are_stuck_with_their_stage() -> None:
    statuses = {
        "sched": Recorded("pending", None), "late": Recorded("pending", None),
        "paused": Recorded("paused", None), "deferred": Recorded("processing", "m-def"),
        "retry": Recorded("processing", "m-retry"), "overdue": Recorded("processing", "m-od"),
        "claimed": Recorded("processing", "m-claimed"), "unclaimed": Recorded("processing", "m-u"),
        "unrouted": Recorded("pending", None),
    }
    sources = _sources(
        statuses=statuses,
        ledger={"m-claimed": LedgerRow("sending", 1, "email"),
                "m-retry": LedgerRow("waiting", 2, "email"),
                "m-od": LedgerRow("waiting", 2, "sms")},
        held_events={"sched": NOW + 3600, "late": NOW - 3600, "paused": OLD},
        deferred={"m-def": NOW + 60}, retries={"m-retry": NOW + 5, "m-od": NOW - 3600})
    report = reconcile([_event(p) for p in statuses], sources, NOW, GRACE)
    assert report.waiting == {"scheduled": 1, "paused": 1, "deferred by a rule": 1,
                              "retry due": 1}
    stages = {s.pkey: s.stage for s in report.stuck}
    assert stages == {
        "late": "processor: a scheduled send past its time, not released",
        "overdue": "sender: retry overdue",
        "claimed": "sender: claimed, never settled",
        "unclaimed": "sender: routed, never claimed",
        "unrouted": "processor: recorded, never routed",
    }


def test_a_young_unfinished_event_is_in_flight_not_stuck() -> None:
    sources = _sources(statuses={"a": Recorded("processing", "m1")})
    report = reconcile([_event("a", YOUNG)], sources, NOW, GRACE)
    assert report.waiting == {"in flight": 1} and report.clean


def test_duplicates_are_told_apart_by_smtp_s_window() -> None:
    sources = _sources(
        statuses={"a": Recorded("processed", "m1"), "b": Recorded("processed", "m2"),
                  "c": Recorded("processed", "m3")},
        ledger={"m1": LedgerRow("sent", 2, "email"), "m2": LedgerRow("sent", 1, "email"),
                "m3": LedgerRow("sent", 2, "email")},
        handed=Handed({"m1": 2, "m2": 2, "m3": 1}, {"email": 0.0}))
    report = reconcile([_event(p) for p in "abc"], sources, NOW, GRACE)
    assert {(d.message_id, d.copies, d.in_smtp_window) for d in report.duplicated} == {
        ("m1", 2, True), ("m2", 2, False)}
    assert report.resent_after_crash == 2 and not report.clean
    assert report.counts()["duplicatedInSmtpWindow"] == 1


def test_a_processed_message_no_sink_got_is_unacknowledged_after_the_sinks_horizon() -> None:
    statuses = {"a": Recorded("processed", "m1"), "b": Recorded("processed", "m2"),
                "c": Recorded("processed", "m3")}
    ledger = {"m1": LedgerRow("sent", 1, "email"), "m2": LedgerRow("sent", 1, "email"),
              "m3": LedgerRow("sent", 1, "push")}
    # "b" was accepted before the sink's horizon (it forgot older messages); push: no sink.
    handed = Handed({}, {"email": OLD - 1, "sms": 0.0})
    events = [_event("a"), _event("b", OLD - 100), _event("c")]
    report = reconcile(events, _sources(statuses=statuses, ledger=ledger, handed=handed),
                       NOW, GRACE)
    assert [(u.message_id, u.channel) for u in report.unacknowledged] == [("m1", "email")]


def test_without_sinks_nothing_is_called_a_duplicate_but_resends_are_counted() -> None:
    sources = _sources(statuses={"a": Recorded("processed", "m1")},
                       ledger={"m1": LedgerRow("sent", 3, "email")})
    report = reconcile([_event("a")], sources, NOW, GRACE)
    assert report.clean and report.resent_after_crash == 1


def test_the_json_and_the_table_say_the_same() -> None:
    sources = _sources(statuses={"a": Recorded("processing", "m1")},
                       ledger={"m1": LedgerRow("sending", 1, "email")})
    report = reconcile([_event("a"), _event("b")], sources, NOW, GRACE)
    data = report.as_json(limit=1)
    assert data["counts"]["stuck"] == 1 and data["counts"]["lost"] == 1
    assert data["stuckByStage"] == {"sender: claimed, never settled": 1}
    assert data["lost"][0]["pKey"] == "b"
    text = table(report)
    assert "stuck at sender: claimed, never settled: 1" in text
    assert [line.split()[-1] for line in text.splitlines() if line.startswith("lost")] == ["1"]


# Messages without a pKey (journey messages, bulk sends): by message id.


def _decided(message_id: str, at: float = OLD, source: str = "engine") -> Decided:
    return Decided(message_id, "t1", "journey JNYx v1 n2", at, source)  # type: ignore[arg-type]


def test_a_message_ends_settled_or_excluded_whatever_its_age() -> None:
    sources = MessageSources(ledger={"m1": LedgerRow("sent", 1, "email"),
                                     "m2": LedgerRow("failed", 1, "sms")},
                             excluded={"m3": "the profile has no push device"})
    report = reconcile_messages([_decided("m1"), _decided("m2", YOUNG), _decided("m3")],
                                sources, NOW, GRACE)
    assert report.ended == {"sent": 1, "failed": 1, "excluded": 1} and report.clean


def test_a_message_nothing_after_the_engine_has_is_lost_past_the_grace_period() -> None:
    report = reconcile_messages([_decided("old"), _decided("young", YOUNG)],
                                MessageSources(ledger={}), NOW, GRACE)
    assert [x.message_id for x in report.lost] == ["old"]
    assert report.waiting == {"in flight": 1} and not report.clean


def test_a_message_held_waits_and_one_stopped_is_stuck_with_its_stage() -> None:
    sources = MessageSources(
        ledger={"claimed": LedgerRow("sending", 1, "push")},
        on_topic=frozenset({"produced", "claimed"}), outbox={"outbox": OLD},
        deferred={"deferred": NOW + 60, "late": NOW - 3600},
        retries={"retry": NOW + 5, "overdue": NOW - 3600})
    ids = ["claimed", "produced", "outbox", "deferred", "late", "retry", "overdue"]
    report = reconcile_messages([_decided(i) for i in ids], sources, NOW, GRACE)
    assert report.waiting == {"deferred by a rule": 1, "retry due": 1}
    assert {s.message_id: s.stage for s in report.stuck} == {
        "claimed": "sender: claimed, never settled",
        "produced": "sender: produced, never claimed",
        "outbox": "journeys: decided, its outbox entry not applied",
        "late": "processor: deferred by a rule, past its time",
        "overdue": "sender: retry overdue",
    }
    assert not report.lost


def test_message_duplicates_and_unacknowledged_as_for_events() -> None:
    sources = MessageSources(
        ledger={"m1": LedgerRow("sent", 2, "email"), "m2": LedgerRow("sent", 1, "push"),
                "m3": LedgerRow("sent", 1, "sms"), "m4": LedgerRow("sent", 1, "email")},
        handed=Handed({"m1": 2, "m2": 3, "m4": 1}, {"email": 0.0, "sms": 0.0}))
    report = reconcile_messages([_decided(i) for i in ("m1", "m2", "m3", "m4")], sources,
                                NOW, GRACE)
    assert {(d.message_id, d.copies, d.in_smtp_window) for d in report.duplicated} == {
        ("m1", 2, True), ("m2", 3, False)}
    assert [(u.message_id, u.channel) for u in report.unacknowledged] == [("m3", "sms")]
    assert report.resent_after_crash == 1
    data = report.as_json()
    assert data["counts"]["duplicatedInSmtpWindow"] == 1 and data["unacknowledged"] == [
        {"messageId": "m3", "channel": "sms", "tenant": "t1"}]
    text = message_table(report)
    assert "messages without a pKey" in text and "ended sent" in text


def test_provider_receipts_count_what_providers_reported_per_channel() -> None:
    from shared.domain.reconcile import LedgerRow, provider_receipts, receipts_table

    ledger = {
        "s1": LedgerRow("sent", 1, "sms"), "s2": LedgerRow("sent", 1, "sms"),
        "s3": LedgerRow("sent", 1, "sms"), "s4": LedgerRow("sending", 1, "sms"),
        "e1": LedgerRow("sent", 1, "email"), "e2": LedgerRow("sent", 1, "email"),
        "p1": LedgerRow("sent", 1, "push"),
    }
    kinds = {"s1": frozenset({"smsDelivered"}), "s2": frozenset({"failed"}),
             "e1": frozenset({"bounced", "opened"}), "p1": frozenset({"pushOpened"}),
             "s4": frozenset({"smsDelivered"})}  # not handed over: not counted
    got = provider_receipts(ledger, kinds)
    assert got == {"email": {"sent": 2, "bounced": 1},
                   "push": {"sent": 1},
                   "sms": {"sent": 3, "smsDelivered": 1, "failed": 1, "noReceipt": 1}}
    # an open is the recipient's, not the provider's; email has no receipt to wait for
    assert receipts_table(got)[2] == (
        "provider receipts (sms): sent 3, smsDelivered 1, failed 1, noReceipt 1")
