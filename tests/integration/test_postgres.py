"""Migrations are numbered, applied at start, and idempotent; the status writes that
decide whether an event may still go."""

import uuid
from datetime import UTC, datetime

import asyncpg

from shared.adapters.postgres import apply_migrations
from shared.adapters.profile_schema_store import ProfileSchemaCache
from shared.adapters.rules_store import TenantRulesCache
from shared.adapters.status_store import begin_processing, record_statuses
from shared.domain.routing import EventOrigin, SendRequest
from shared.domain.status import Status, StatusWrite
from shared.outgoing.step import Pending, Step, decide_messages
from tests.integration.conftest import settings


async def test_a_second_run_applies_nothing() -> None:
    assert await apply_migrations(settings.pg_dsn) == []


async def test_processing_replaces_a_held_status_but_never_a_final_one(
    pool: asyncpg.Pool,
) -> None:
    held, done = f"held-{uuid.uuid4().hex}", f"done-{uuid.uuid4().hex}"
    async with pool.acquire() as connection:
        await record_statuses(connection, [
            StatusWrite(held, "default", "EVTx", Status.PAUSED, "paused"),
            StatusWrite(done, "default", "EVTx", Status.IGNORED, "refused")])
        allowed = await begin_processing(connection, [
            StatusWrite(p, "default", "EVTx", Status.PROCESSING, None, str(uuid.uuid4()))
            for p in (held, done)])
        assert allowed == {held}
        rows = dict(await connection.fetch(
            "SELECT pkey, status FROM event_status WHERE pkey = ANY($1)", [held, done]))
    assert rows == {held: "processing", done: "ignored"}


async def test_the_rules_step_marks_the_events_going_out_processing_in_its_write(
    pool: asyncpg.Pool,
) -> None:
    """The processor's ``begun``: the decision's statement also moves each event whose
    message goes to ``processing`` (a held one too), never an event that already ended (the
    gateway's 503 path ends it ``ignored``); only the first may go on."""
    tenant = f"begin-{uuid.uuid4().hex[:8]}"
    held, done = f"held-{uuid.uuid4().hex}", f"done-{uuid.uuid4().hex}"
    step = Step(TenantRulesCache(pool, 0), ProfileSchemaCache(pool, 0))

    def message(pkey: str) -> Pending:
        return Pending(SendRequest(
            messageId=str(uuid.uuid4()), tenant=tenant,
            origin=EventOrigin(eventId="EVTx", pKey=pkey), channel="email",
            to={"email": f"{pkey}@example.com"}, ctx={},
            acceptedAt=datetime.now(UTC).timestamp()), transactional=True)

    pendings = [message(held), message(done)]
    begun: set[str] = set()
    async with pool.acquire() as connection:
        await record_statuses(connection, [
            StatusWrite(held, tenant, "EVTx", Status.PAUSED, "paused"),
            StatusWrite(done, tenant, "EVTx", Status.IGNORED, "refused")])
        decided = await decide_messages(connection, step, pendings, datetime.now(UTC),
                                        begun=begun)
        rows = dict(await connection.fetch(
            "SELECT pkey, status FROM event_status WHERE pkey = ANY($1)", [held, done]))
        history = await connection.fetchval(
            "SELECT count(*) FROM contact_history WHERE tenant_id = $1", tenant)
        # A redelivery decides nothing again, and still says which may go on.
        again: set[str] = set()
        await decide_messages(connection, step, pendings, datetime.now(UTC), begun=again)
    assert [d.outcome for d in decided] == ["send", "send"]
    assert begun == again == {held}
    assert rows == {held: "processing", done: "ignored"}
    assert history == 2
