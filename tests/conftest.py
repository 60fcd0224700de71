import pytest

from tests.session_logs import record_offsets


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "after_all: reads what the whole session left behind (logs, metrics);"
        " runs after every other test, the disruptive ones included")
    record_offsets(config)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that stop a shared service run last, so nothing else runs during the outage;
    the scans of logs and metrics (marker ``after_all``) after them, over everything."""
    items.sort(key=lambda item: (item.get_closest_marker("after_all") is not None,
                                 item.get_closest_marker("disruptive") is not None))
