"""A journey message's ctx from the data of the waits resolved before it."""

from shared.domain.journeys.message_ctx import journey_ctx


def test_each_field_comes_from_the_latest_wait_that_has_it() -> None:
    waits = {"react": {"kind": "opened"},
             "buy": {"customerId": "c1", "amount": "10.50", "note": None},
             "again": {"amount": "12.00"}}
    assert journey_ctx(["amount", "kind", "note"], set(), waits) == (
        {"amount": "12.00", "kind": "opened"}, None)


def test_a_required_field_no_wait_has_is_named() -> None:
    assert journey_ctx(["offer", "amount"], {"amount"}, {"react": {"kind": "opened"}}) == (
        {}, "amount")
    assert journey_ctx(["offer"], set(), {}) == ({}, None)
