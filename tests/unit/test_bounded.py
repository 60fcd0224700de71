"""Every in-process cache has a bound, whatever callers send."""

from __future__ import annotations

import dataclasses

import pytest

from services.gateway.wiring import Gateway
from services.processor.wiring import Processor
from shared.bounded import BoundedDict
from shared.sending.wiring import Sender


def test_past_its_size_the_oldest_entry_goes() -> None:
    cache: BoundedDict[int, str] = BoundedDict(3)
    for i in range(10):
        cache[i] = str(i)
        assert len(cache) <= 3
    assert list(cache) == [7, 8, 9]
    cache[8] = "eight"  # a replaced value evicts nothing
    assert list(cache.items()) == [(7, "7"), (8, "eight"), (9, "9")]
    assert cache.get(1) is None and 9 in cache


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BoundedDict(0)


@pytest.mark.parametrize(("owner", "name"), [
    (Gateway, "_models"), (Processor, "_models"), (Sender, "templates"),
])
def test_request_models_and_compiled_templates_are_bounded(owner: type, name: str) -> None:
    field = {f.name: f for f in dataclasses.fields(owner)}[name]
    cache = field.default_factory()  # type: ignore[misc]
    assert isinstance(cache, BoundedDict) and cache.maxsize <= 1024
