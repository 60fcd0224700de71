"""Handle a batch of ``parcours.profiles.v1`` records: check each record's signature and
tenant, validate upserts against the tenant's profile schema (as the profile API does),
then apply the batch in one transaction — upserts through ``apply_profile_writes`` with
the record's timestamp as the write's (last writer wins, whoever wrote: API, Kafka,
import), tombstones through the erasure registry — and dead-letter what could not be
applied, with the reason. Offsets are committed by the caller only after this returns
(at-least-once): a redelivered upsert is no newer than itself and changes nothing; a
redelivered tombstone erases nothing more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.profile_ingest.metrics import BATCH_SECONDS, DEADLETTERED, RECORDS, RETRIES
from services.profile_ingest.wiring import Ingest
from shared.adapters import (
    personal_data,
    profile_store,
)
from shared.adapters.kafka import publish_dead_letters
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.domain.deadletter import Source
from shared.domain.profile_records import (
    Bad,
    parse_key,
    profile_invalid,
    read_upsert,
    signed_bytes,
)
from shared.domain.profiles import ProfileWrite, to_write
from shared.domain.record_signing import (
    Refused,
    Signed,
    SigningKey,
    authorize,
    check_signature,
    check_tenant,
)
from shared.resilience import retry_forever
from shared.topics import PROFILES

log = logging.getLogger(__name__)
STAGE = "profile-ingest"
_TRANSIENT = (*DB_UNAVAILABLE, KafkaError)


class Record(NamedTuple):
    key: bytes | None
    value: bytes | None  # None: a tombstone
    timestamp_ms: int  # the Kafka record's (CreateTime: when the producer wrote it)
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True)
class Upsert:
    record: Record
    tenant: str
    write: ProfileWrite
    written_at: datetime


@dataclass(frozen=True)
class Erase:
    record: Record
    tenant: str
    profile_id: str


Letter = tuple[Record, str]


def written_at(record: Record) -> datetime:
    return datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)


async def dead_letter(ingest: Ingest, letters: Sequence[Letter]) -> None:
    for _, reason in letters:
        DEADLETTERED.labels(reason.split(":", 1)[0]).inc()
    await retry_forever(
        lambda: publish_dead_letters(ingest.producer, STAGE,
                                     [(r.key, r.value or b"", why,
                                       Source(PROFILES.name, r.headers, r.timestamp_ms / 1000))
                                      for r, why in letters]),
        "dead-lettering records", (KafkaError,), on_retry=RETRIES.inc,
    )


async def _signers(ingest: Ingest, records: Sequence[Record]) -> list[SigningKey | Refused]:
    """The key that signed each record, or why it is refused; only keys of valid
    signatures are looked up, many to a query, through a cache."""
    secret = ingest.settings.kafka_signing_secret.encode()
    checked = [check_signature(r.headers, signed_bytes(r.key, r.value), secret)
               for r in records]
    key_ids = {c.key_id for c in checked if isinstance(c, Signed)}
    keys = await retry_forever(lambda: ingest.signing_keys.get_many(key_ids),
                               "looking up signing keys", _TRANSIENT,
                               on_retry=RETRIES.inc) if key_ids else {}
    return [authorize(c, keys[c.key_id]) if isinstance(c, Signed) else c for c in checked]


async def _read_one(ingest: Ingest, record: Record, signer: SigningKey | Refused
                    ) -> Upsert | Erase | Refused | Bad:
    if isinstance(signer, Refused):
        return signer
    identity = parse_key(record.key)
    if isinstance(identity, Bad):
        return identity
    tenant, profile_id = identity
    forbidden = check_tenant(signer, tenant)
    if forbidden is not None:
        return Refused("forbidden: the record's key names a tenant its signing key does not"
                       " belong to")
    if record.value is None:
        return Erase(record, tenant, profile_id)
    upsert = read_upsert(record.value, tenant, profile_id)
    if isinstance(upsert, Bad):
        return upsert
    envelope, body = upsert
    tenant_schema = await retry_forever(lambda: ingest.schemas.get(tenant),
                                        "reading a profile schema", _TRANSIENT,
                                        on_retry=RETRIES.inc)
    try:
        parsed = tenant_schema.model.model_validate(body)
    except ValidationError as error:
        return Bad(profile_invalid(error))
    write = to_write(profile_id, parsed, replace=envelope.mode == "replace", source="kafka")
    return Upsert(record, tenant, write, written_at(record))


async def _read(ingest: Ingest, records: Sequence[Record]
                ) -> tuple[list[Upsert | Erase], list[Letter]]:
    operations: list[Upsert | Erase] = []
    letters: list[Letter] = []
    for record, signer in zip(records, await _signers(ingest, records), strict=True):
        read = await _read_one(ingest, record, signer)
        if isinstance(read, Refused | Bad):
            RECORDS.labels("refused" if isinstance(read, Refused) else "invalid").inc()
            letters.append((record, read.reason))
        else:
            operations.append(read)
    return operations, letters


def _runs(operations: list[Upsert | Erase]) -> list[list[Upsert] | Erase]:
    """In the records' order: each tombstone alone, the upserts between tombstones together
    (their order among themselves is the timestamps', ties in the records' order)."""
    runs: list[list[Upsert] | Erase] = []
    for operation in operations:
        if isinstance(operation, Erase):
            runs.append(operation)
        elif runs and isinstance(runs[-1], list):
            runs[-1].append(operation)
        else:
            runs.append([operation])
    return runs


async def _apply(ingest: Ingest, operations: list[Upsert | Erase]) -> list[str]:
    """Every operation, in one transaction; the outcome of each, in order."""
    connection = ingest.connection
    outcomes: dict[int, str] = {}
    async with connection.transaction():
        for run in _runs(operations):
            if isinstance(run, Erase):
                await personal_data.erase_profile(connection, run.tenant, run.profile_id)
                outcomes[id(run)] = "erased"
                continue
            # one call per tenant, each write at its record's time: four round trips for
            # a poll of one tenant's records, whatever their timestamps
            tenants: dict[str, list[Upsert]] = {}
            for upsert in run:
                tenants.setdefault(upsert.tenant, []).append(upsert)
            for tenant, upserts in tenants.items():
                results = await profile_store.apply_profile_writes(
                    connection, tenant, [(u.write, u.written_at) for u in upserts])
                for upsert, result in zip(upserts, results, strict=True):
                    outcomes[id(upsert)] = result.outcome
    return [outcomes[id(o)] for o in operations]


async def handle_batch(ingest: Ingest, records: Sequence[Record]) -> None:
    started = time.perf_counter()
    operations, letters = await _read(ingest, records)

    async def attempt() -> list[str]:
        await ingest.ensure_db()
        return await _apply(ingest, operations)

    outcomes = await retry_forever(attempt, "writing profiles", _TRANSIENT,
                                   on_retry=RETRIES.inc) if operations else []
    for operation, outcome in zip(operations, outcomes, strict=True):
        if outcome == "test":
            outcome = "conflict"
            assert isinstance(operation, Upsert)
            letters.append((operation.record, (
                f"conflict: {operation.write.profile_id!r} is a test profile: test profiles"
                " are written through the admin API (/admin/v1/test-profiles)")))
        RECORDS.labels(outcome).inc()
    # After the writes: a batch that fails is handled again record by record
    # (handle_isolating_poison), which must not dead-letter twice.
    if letters:
        await dead_letter(ingest, letters)
    BATCH_SECONDS.observe(time.perf_counter() - started)


async def poisoned(ingest: Ingest, record: Record, reason: str) -> None:
    RECORDS.labels("error").inc()
    await dead_letter(ingest, [(record, reason)])
