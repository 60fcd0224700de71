"""Pure domain logic: no I/O, no asyncio. Everything here is unit-tested."""
