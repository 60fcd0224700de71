"""Scale-out (P11, issue 15): a second worker of the processor and of the email sender joins
its consumer group under load and takes half the partitions; its leaving, or its
``kill -9``, gives them back to the first; and ``parcours reconcile`` finds nothing lost,
stuck or doubled — with no crash, not one duplicate (a sender hands its partitions over
only once what it read from them is settled: shared/adapters/rebalance.py); after a
``kill -9``, duplicates only inside SMTP's crash window, as for one worker.

The second workers are started and stopped here (``deploy/local/stack.py start
processor-2 sender-email-2``), unless ``make up WORKERS=2`` started them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from shared.settings import get_settings
from shared.topics import EVENTS_IN, EVENTS_KAFKA, SEND_EMAIL_TX
from tests.faults.test_faults import RESUME_WITHIN_S, run_scenario
from tests.integration.conftest import eventually, stack

pytestmark = pytest.mark.disruptive
settings = get_settings()
SCALED = {  # service → its group and the partitions the group shares
    "processor": ("parcours-processor", EVENTS_IN.partitions + EVENTS_KAFKA.partitions),
    "sender-email": ("parcours-sender-email", SEND_EMAIL_TX.partitions),
}
SECOND = [f"{service}-2" for service in SCALED]
STARTED_BY_MAKE_UP = int(os.environ.get("PARCOURS_STACK_WORKERS") or 1) >= 2


async def assignments(group: str) -> list[int]:
    """Partitions held by each member of ``group``, largest first."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        [description] = await admin.describe_consumer_groups([group])
        members = description.to_object()["groups"][0]["members"]
    finally:
        await admin.close()
    held = []
    for member in members:
        assignment = ConsumerProtocolMemberAssignment.decode(member["member_assignment"])
        held.append(sum(len(partitions) for _topic, partitions in assignment.assignment))
    return sorted(held, reverse=True)


async def split_evenly() -> None:
    """Both groups have two members sharing their partitions half and half."""
    async def check() -> bool:
        for group, partitions in SCALED.values():
            if await assignments(group) != [partitions // 2, partitions - partitions // 2]:
                return False
        return True

    await eventually(check, "two workers, half the partitions each", 30)


async def held_by_one() -> None:
    async def check() -> bool:
        for group, partitions in SCALED.values():
            if await assignments(group) != [partitions]:
                return False
        return True

    await eventually(check, "one worker holding every partition", 30)


@pytest.fixture
async def one_worker_each() -> AsyncIterator[None]:
    """The stack as `make up` leaves it: one worker of each (stopped again afterwards)."""
    await asyncio.to_thread(stack, "stop", *SECOND)
    await held_by_one()
    yield
    if STARTED_BY_MAKE_UP:
        await asyncio.to_thread(stack, "start", *SECOND)
    else:
        await asyncio.to_thread(stack, "stop", *SECOND)


async def test_a_second_worker_joins_and_leaves_under_load_doubling_nothing(
    pool: asyncpg.Pool, one_worker_each: None
) -> None:
    async def fault() -> None:
        await asyncio.to_thread(stack, "start", *SECOND)  # each joins: a rebalance
        await split_evenly()
        await asyncio.sleep(3.0)  # load on two workers each
        await asyncio.to_thread(stack, "stop", *SECOND)  # each leaves: a rebalance
        await held_by_one()

    report = await run_scenario(pool, "scale-out-join-leave", fault)
    assert report["counts"]["duplicated"] == 0, report["duplicated"][:5]


@pytest.mark.faults
async def test_kill_9_of_a_second_worker_under_load(
    pool: asyncpg.Pool, one_worker_each: None
) -> None:
    await asyncio.to_thread(stack, "start", *SECOND)
    await split_evenly()
    took: dict[str, float] = {}

    async def fault() -> None:
        await asyncio.to_thread(stack, "kill", *SECOND)
        killed_at = time.monotonic()
        await held_by_one()  # the survivors take the partitions once the session expires
        took["taken over"] = time.monotonic() - killed_at
        await asyncio.sleep(3.0)  # load on the survivors alone
        await asyncio.to_thread(stack, "start", *SECOND)
        await split_evenly()

    report = await run_scenario(pool, "scale-out-kill-9", fault)
    print(f"partitions taken over {took['taken over']:.1f} s after the kill")
    assert took["taken over"] <= RESUME_WITHIN_S, took
    counts = report["counts"]
    assert counts["duplicated"] == counts["duplicatedInSmtpWindow"], report["duplicated"][:5]
