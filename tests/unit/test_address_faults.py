"""Which provider refusals blame the recipient's address (and so feed quarantine)."""

from __future__ import annotations

import pytest

from shared.adapters.delivery_errors import PermanentFailure, TransientFailure
from shared.adapters.http_provider import failure
from shared.adapters.smtp import _classify, address_fault


@pytest.mark.parametrize(("code", "text", "blamed"), [
    (550, "5.1.1 no such user", True),
    (550, "no such user", True),            # no enhanced code: every 5xx but 552
    (553, "5.1.3 bad address syntax", True),
    (552, "5.2.2 mailbox full", True),
    (552, "5.2.3 message too long", False),
    (552, "message size exceeds limit", False),
    (554, "5.7.1 rejected as spam", False),
    (550, "5.7.26 DMARC policy", False),
    (554, "5.6.0 content refused", False),
    (452, "4.2.2 mailbox full", True),
    (450, "4.1.8 sender domain does not resolve", False),  # ours, not the recipient's
    (550, "5.1.7 bad sender address syntax", False),
    (450, "4.1.2 domain not found", True),
    (451, "4.3.0 try again later", False),
    (451, "4.7.1 greylisted", False),
    (421, "service closing", False),
    (450, "mailbox busy", True),
])
def test_smtp_replies(code: int, text: str, blamed: bool) -> None:
    assert address_fault(code, text) is blamed


def test_smtp_classification_carries_it() -> None:
    hard = _classify(550, "5.1.1 no such user")
    soft = _classify(452, "4.2.2 full")
    assert isinstance(hard, PermanentFailure) and hard.address_fault
    assert isinstance(soft, TransientFailure) and soft.address_fault
    assert not _classify(451, "4.3.0 later").address_fault


@pytest.mark.parametrize(("status", "kind", "blamed"), [
    (400, PermanentFailure, True), (410, PermanentFailure, True),
    (422, PermanentFailure, True), (401, PermanentFailure, False),
    (403, PermanentFailure, False), (404, PermanentFailure, False),
    (413, PermanentFailure, False), (429, TransientFailure, False),
    (408, TransientFailure, False), (503, TransientFailure, False),
])
def test_provider_answers(status: int, kind: type, blamed: bool) -> None:
    refused = failure(status, "detail")
    assert isinstance(refused, kind) and refused.address_fault is blamed
