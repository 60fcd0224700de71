"""R1 across the whole suite: after everything else in the session (marker ``after_all``,
tests/conftest.py), ``parcours reconcile``'s verdict over the session's window, every
tenant at once, events (by pKey) and messages without a pKey (journey messages): nothing
lost, stuck or unacknowledged, duplicates only in SMTP's crash window. The tables are
printed either way (``-s``).

The window starts when this pytest process started, so a module run alone checks what it
sent itself. Left out, by tenant only, the tenants whose findings are planted on purpose
(``EXCLUDED``, each with why). Nothing else is: what legitimately stays unfinished (a
scheduled send, a paused message, a deferral, a retry due) is ``waiting``, not a finding,
and the tests that stop Kafka, PostgreSQL or a service assert that their events end, so
their tenants are checked like any other.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from shared.adapters.reconcile_sources import (
    Read,
    Reconciled,
    SinkAnswers,
    Window,
    reconcile_window,
)
from shared.domain.reconcile import (
    Duplicated,
    Handed,
    Lost,
    MessageReport,
    Report,
    StuckMessage,
    message_table,
    table,
)
from tests.integration.conftest import (
    GATEWAY,
    eventually,
    final_status,
    publish_event,
    settings,
    unique_email,
)

pytestmark = pytest.mark.after_all

# Tenant prefixes whose findings are made on purpose, and why.
EXCLUDED = {
    # test_reconcile.py: a status deleted, a claim never settled, a second hand-over of one
    # message, a ledger row no sink got — each kind of finding, planted to be found.
    "rec-planted-": "test_reconcile.py plants lost, stuck, duplicated and unacknowledged"
                    " events and journey messages",
    # Not a test's: the benchmarks write their records straight to the topics and plant
    # lost and stuck events (bench/reconcile.py) or delete their rows when done.
    "bench-": "benchmarks run beside the suite on a shared stack",
    # test_journey_lifecycle.py stores versions and moves straight into the journey store
    # with their sends stripped (_no_sends: its messages need not exist), so its actionSent
    # steps have no later stage by construction; the engine's own path is checked by the
    # other journey tests' tenants.
    "jlc-": "test_journey_lifecycle.py writes journey moves without their sends",
}
SETTLE_S = 120.0  # the session's last events, and their retries, may still be under way


def session_started() -> float:
    """When this pytest process started (Linux /proc: its start in clock ticks after
    boot), minus a second: the window's start."""
    after_boot = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                if line.startswith("btime "))
    return boot + after_boot / os.sysconf("SC_CLK_TCK") - 1


def excluded(tenant: str) -> bool:
    return tenant.startswith(tuple(EXCLUDED))


def findings(reconciled: Reconciled) -> list[str]:
    """What R1 and R2 forbid, outside the excluded tenants."""
    report = reconciled.report
    found = [f"lost {x.tenant} {x.pkey} {x.event_id} from {x.topic}"
             for x in report.lost if not excluded(x.tenant)]
    found += [f"stuck {x.tenant} {x.pkey} {x.event_id} {x.status}: {x.stage}"
              for x in report.stuck if not excluded(x.tenant)]
    found += [f"unacknowledged {x.tenant} {x.message_id} {x.pkey} {x.channel}"
              for x in report.unacknowledged if not excluded(x.tenant)]
    found += [f"duplicated {x.tenant} {x.message_id} {x.pkey} {x.copies} copies, NOT in"
              " SMTP's window" for x in report.duplicated
              if not excluded(x.tenant) and not x.in_smtp_window]
    messages = reconciled.messages  # journey messages and other sends without a pKey
    assert messages is not None
    found += [f"lost message {x.tenant} {x.message_id} {x.origin}"
              for x in messages.lost if not excluded(x.tenant)]
    found += [f"stuck message {x.tenant} {x.message_id} {x.origin}: {x.stage}"
              for x in messages.stuck if not excluded(x.tenant)]
    found += [f"unacknowledged message {x.tenant} {x.message_id} {x.channel}"
              for x in messages.unacknowledged if not excluded(x.tenant)]
    found += [f"duplicated message {x.tenant} {x.message_id} {x.copies} copies, NOT in"
              " SMTP's window" for x in messages.duplicated
              if not excluded(x.tenant) and not x.in_smtp_window]
    return found


async def test_every_event_of_the_session_ended_exactly_once(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    since = session_started()
    # Its own event, so a run of this module alone still reconciles something.
    event_id = await publish_event(pool, "event")
    sent = await http.post(f"{GATEWAY}/v1/events/{event_id}",
                           json={"email": unique_email("session"), "ctx": {"item": "r1"}})
    assert sent.status_code == 202, sent.text
    assert (await final_status(http, sent.json()["href"]))["status"] == "processed"

    last: dict[str, Reconciled] = {}

    async def clean() -> bool:
        # No grace: an event not ended is stuck unless something legitimately holds it.
        async with pool.acquire() as connection:
            last["r"] = await reconcile_window(
                settings, connection, Window(since, time.time()), grace_s=0)
        return not findings(last["r"])

    try:
        await eventually(clean, "every event of the session to end", SETTLE_S)
    except AssertionError:
        pass  # the verdict below lists what did not
    reconciled = last["r"]
    report = reconciled.report
    print(f"\nreconcile over the session since {time.strftime('%H:%M:%S', time.gmtime(since))}"
          f" UTC, every tenant ({reconciled.read.records:,} records,"
          f" {reconciled.seconds:.1f} s); left out: {', '.join(EXCLUDED)}")
    print(table(report))
    assert reconciled.messages is not None
    print(message_table(reconciled.messages))
    wrong = findings(reconciled)
    assert report.accepted >= 1 and sum(report.ended.values()) >= 1
    assert reconciled.sinks.handed is not None, "no sink answered: nothing could be checked"
    assert not wrong, f"{len(wrong)} findings:\n" + "\n".join(wrong[:50])


def test_the_session_check_fails_on_a_finding_outside_the_planted_tenants() -> None:
    """The check can fail: a lost event, a stuck journey message and a duplicate outside
    SMTP's window each count in any tenant but the planted ones; a duplicate inside the
    window does not."""
    report = Report(lost=[Lost("p1", "EVTx", 0.0, "t", "t-1"),
                          Lost("p2", "EVTx", 0.0, "t", "rec-planted-1")],
                    duplicated=[Duplicated("m1", "p3", 2, True, "t-1"),
                                Duplicated("m2", "p4", 2, False, "t-1")])
    messages = MessageReport(stuck=[
        StuckMessage("m3", "t-2", "journey j v1 n", 0.0, "sender: claimed, never settled"),
        StuckMessage("m4", "bench-x", "journey j v1 n", 0.0, "sender: claimed, never settled")])
    found = findings(Reconciled(report, Read(), SinkAnswers(Handed({}, {}), []), 0.0,
                                messages))
    assert [line.split()[:2] for line in found] == [
        ["lost", "t-1"], ["duplicated", "t-1"], ["stuck", "message"]], found
