"""The per-tenant caches read an entry once however many callers miss it together (a
sender's batch asks from every message in one turn of the event loop); an announced change
makes later callers read again; a failed read fails its callers and is not kept."""

from __future__ import annotations

import asyncio

import pytest

from shared.adapters.tenant_cache import TenantCache


class Counting(TenantCache[str]):
    def __init__(self) -> None:
        super().__init__(None, 60.0, "unit")  # type: ignore[arg-type]
        self.reads = 0
        self.fail = False

    async def _load(self, tenant: str, previous: str | None) -> str:
        self.reads += 1
        read = self.reads
        await asyncio.sleep(0.01)
        if self.fail:
            raise ConnectionResetError("away")
        return f"{tenant}#{read}"


def test_callers_that_miss_together_share_one_read() -> None:
    cache = Counting()

    async def main() -> list[str]:
        return await asyncio.gather(*(cache.get("acme") for _ in range(50)))

    assert asyncio.run(main()) == ["acme#1"] * 50 and cache.reads == 1


def test_a_change_announced_during_a_read_makes_later_callers_read_again() -> None:
    cache = Counting()

    async def main() -> tuple[str, str, str]:
        early = asyncio.ensure_future(cache.get("acme"))
        await asyncio.sleep(0)
        cache._changed(None, 0, "unit", "acme")
        late = await cache.get("acme")
        return await early, late, await cache.get("acme")

    early, late, kept = asyncio.run(main())
    assert (early, late, kept) == ("acme#1", "acme#2", "acme#2") and cache.reads == 2


def test_a_failed_read_fails_its_callers_and_the_next_reads_again() -> None:
    cache = Counting()
    cache.fail = True

    async def main() -> str:
        results = await asyncio.gather(*(cache.get("acme") for _ in range(3)),
                                       return_exceptions=True)
        assert all(isinstance(r, ConnectionResetError) for r in results)
        cache.fail = False
        return await cache.get("acme")

    assert asyncio.run(main()) == "acme#2"


def test_a_cancelled_caller_leaves_the_others_read() -> None:
    cache = Counting()

    async def main() -> str:
        first = asyncio.ensure_future(cache.get("acme"))
        second = asyncio.ensure_future(cache.get("acme"))
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        return await second

    assert asyncio.run(main()) == "acme#1" and cache.reads == 1
