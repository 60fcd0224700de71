"""The SMTP sink's count of new recipients: what a load test polls while it runs."""

from services.smtp_sink.store import Mailbox


def test_counts_only_what_arrived_after_the_last_poll() -> None:
    mailbox = Mailbox(capacity=3)
    assert mailbox.count_after("run-", 0) == (0, 0)
    for to in ("run-1@x.org", "other@x.org", "RUN-2@x.org"):
        mailbox.add("a@x.org", [to], b"Message-ID: <m>\r\n\r\nbody")
    assert mailbox.count_after("run-", 0) == (2, 3)
    assert mailbox.count_after("run-", 1) == (1, 3)  # case-insensitive, as addresses are
    mailbox.add("a@x.org", ["run-3@x.org", "run-4@x.org"], b"\r\n\r\n")  # the first one goes
    assert mailbox.count_after("run-", 3) == (2, 4)
    assert mailbox.count_after("run-", 4) == (0, 4)
