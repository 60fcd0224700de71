"""The tracking service's reaction ids (services/tracking/reaction_rows.py) are the
domain's own: the same UUID 5 as ``reaction_id`` for opens and clicks, human and machine.
(The record the statement builds: tests/integration/test_tracking_hits.py.)"""


import pytest

from services.tracking.reaction_rows import open_or_click_id
from shared.domain.reactions import ReactionKind, reaction_id, trace_reason


@pytest.mark.parametrize("kind", [ReactionKind.OPENED, ReactionKind.CLICKED])
@pytest.mark.parametrize("index", [None, 0, 7, 123])
@pytest.mark.parametrize("machine", [False, True])
@pytest.mark.parametrize("tenant", ["t1", "tenant-é/ü", ""])
def test_the_fast_id_is_the_reactions_own(kind, index, machine, tenant):
    message = "6f1c1d9e-2b1a-4f7e-9a55-0c1d2e3f4a5b"
    assert open_or_click_id(tenant, message, kind, index, machine) == reaction_id(
        tenant, message, kind, link=index, machine=machine)


@pytest.mark.parametrize(("index", "url", "machine", "why", "reason"), [
    (None, None, False, None, None),
    (0, "https://a.example", False, None, "link 0: https://a.example"),
    (None, None, True, None, "machine: flagged"),
    (2, "https://b.example", True, "HEAD request (a link checker)",
     "link 2: https://b.example; machine: HEAD request (a link checker)"),
    (1, "https://c.example/" + "x" * 600, False, None,
     ("link 1: https://c.example/" + "x" * 600)[:500]),
])
def test_a_trace_row_says_the_link_and_the_machine(index, url, machine, why, reason):
    assert trace_reason(index, url, machine, why) == reason
