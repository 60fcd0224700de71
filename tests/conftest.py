import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that stop a shared service run last, so nothing else runs during the outage."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)
