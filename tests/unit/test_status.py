from shared.domain.status import DESCRIPTIONS, TERMINAL, Status, supersedes


def test_first_write_always_wins() -> None:
    assert supersedes(Status.PROCESSING, None)


def test_status_moves_forward_only() -> None:
    assert supersedes(Status.PROCESSED, Status.PROCESSING)
    assert not supersedes(Status.PROCESSING, Status.PROCESSED)
    assert not supersedes(Status.PROCESSING, Status.PROCESSING)


def test_terminal_statuses_are_final() -> None:
    for done in TERMINAL:
        for other in Status:
            assert not supersedes(other, done)


def test_every_status_is_described_and_its_enum_says_so() -> None:
    assert set(DESCRIPTIONS) == set(Status) and all(DESCRIPTIONS.values())
    for status in Status:
        assert f"`{status.value}`: {DESCRIPTIONS[status]}" in (Status.__doc__ or "")
