"""Deliver a batch of send records: claim, render, control, hand over, settle.

Control: the message's typology's control rules run on the rendered message; the first
that fails excludes it, and nothing is handed over. A provider's refusal that blames the
address feeds quarantine (hard: permanent; soft: transient, one per message) in the
settle's transaction, with the contact history outcome and a trace row.

One ledger claim per batch; the messages go out in parallel through the provider, and
their outcomes are settled as they come, many to a transaction (group commit: a write
waits up to 20 ms for more). Settling early keeps the window in which a crash makes us
resend a message the provider already accepted down to a flush, not a whole batch.
Records that cannot be read go to the dead-letter topic.

Retries off the partition: a message the provider refused for now (SMTP 4xx, HTTP
408/409/429/5xx, a timeout) is not retried here, holding its batch and the partition
behind it: it goes to the durable retry schedule (``send_retries``, written in the
settle's transaction) with exponential backoff and jitter, and the batch goes on. The
lane's retry worker (``shared.sending.retries``) takes it again when due, through
``deliver_due``; past the policy's limit it ends ``deliveryFailed`` with the last reply.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import suppress
from typing import Any, TypeVar

import asyncpg
import orjson
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from shared.adapters import delivery_ledger, send_retries
from shared.adapters.catalog_store import load_message_template
from shared.adapters.delivery_errors import PermanentFailure, TransientFailure
from shared.adapters.delivery_ledger import Claimable, Outcome
from shared.adapters.kafka import encode, publish_dead_letters
from shared.adapters.message_outcomes import MessageOutcome, Settled
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.adapters.quarantine_store import AddressFailure
from shared.adapters.send_retries import Due, Waiting
from shared.adapters.status_store import record_statuses
from shared.domain import timeline
from shared.domain.deadletter import invalid_reason
from shared.domain.delivery_rules.addresses import normalise, recipient_address
from shared.domain.delivery_rules.control import control_failures
from shared.domain.delivery_rules.model import RuleKind
from shared.domain.delivery_rules.quarantine import FailureKind
from shared.domain.delivery_rules.tenant import TenantRules
from shared.domain.events import EventConfig, typed_ctx
from shared.domain.locales import LocaleChoice, LocalisedMessage, compile_localised, wanted_locale
from shared.domain.profile_schema import ProfileSchema, typed_attributes
from shared.domain.rendering import (
    RenderedMessage,
    RenderError,
    render_message,
    template_context,
)
from shared.domain.routing import SendRequest, event_of_unreadable, read_send_record
from shared.domain.status import Status, StatusWrite
from shared.resilience import retry_forever
from shared.sending.failover import ProvidersDown
from shared.sending.provider_feedback import device_gone, handover_note
from shared.sending.tracking import tracked
from shared.sending.wiring import Sender
from shared.stage_metrics import observe, observe_one

log = logging.getLogger(__name__)
_DB_OR_KAFKA = (*DB_UNAVAILABLE, KafkaError)
# key, value, and optionally the marks of its timeline so far: the processor's (its
# header) and when this sender consumed it (shared.domain.timeline)
Record = tuple[bytes | None, bytes] | tuple[bytes | None, bytes, tuple[float, ...]]
Marks = dict[str, tuple[float, ...]]  # message id -> its marks so far
_SENDER_STAGES = timeline.STAGES[4:8]  # observed at hand-over; settled once it is
T = TypeVar("T")


Letter = tuple[bytes | None, bytes, str]  # a record for the dead-letter topic, and why


def _readable(sender: Sender, records: Sequence[Record], marks: Marks
              ) -> tuple[list[SendRequest], list[Letter]]:
    """Parse the batch, keep one copy of each message; what cannot be read, and why."""
    requests: dict[str, SendRequest] = {}
    letters: list[Letter] = []
    for record in records:
        key, raw = record[0], record[1]
        try:
            request = read_send_record(raw)
        except ValidationError as error:
            letters.append((key, raw, f"invalid: {error.error_count()} errors"))
            continue
        if request.messageId in requests:
            sender.spec.metrics.duplicates.inc()
        if request.messageId not in requests and len(record) > 2:
            marks[request.messageId] = (request.acceptedAt, *record[2])  # type: ignore[misc]
        requests.setdefault(request.messageId, request)
    return list(requests.values()), letters


async def dead_letter(sender: Sender, letters: Sequence[Letter]) -> None:
    """Written until the broker takes them: a dead letter is never dropped."""
    retries = sender.spec.metrics.retries("kafka")
    await retry_forever(
        lambda: publish_dead_letters(sender.producer, sender.spec.stage, letters,
                                     sender.spec.topic.name),
        "dead-lettering records", (KafkaError,), on_retry=retries.inc)


async def deliver_batch(sender: Sender, records: Sequence[Record]) -> None:
    marks: Marks = {}
    requests, letters = _readable(sender, records, marks)
    # A copy of a message the batch before this one still sends (a record produced twice)
    # is that one's: the ledger would let it be claimed again while it is 'sending'.
    mine = [r for r in requests if r.messageId not in sender.in_flight]
    sender.in_flight.update(r.messageId for r in mine)
    try:
        await _claim_and_send(sender, mine, duplicates=len(requests) - len(mine),
                              marks=marks)
    finally:
        sender.in_flight.difference_update(r.messageId for r in mine)
    # Once the batch went through: a batch that fails is handled again record by record
    # (handle_isolating_poison), which must not write its dead letters twice.
    if letters:
        sender.spec.metrics.failed("invalid").inc(len(letters))
        await _end_unreadable(sender, letters)
        await dead_letter(sender, letters)


async def _claim_and_send(sender: Sender, requests: list[SendRequest], duplicates: int,
                          marks: Marks | None = None) -> None:
    async def claim() -> set[str]:
        async with sender.db() as connection:
            return await delivery_ledger.claim(
                connection, sender.spec.channel.value,
                [Claimable(r.messageId, r.tenant, r.event and r.event.pKey) for r in requests],
            )

    claimed = await _with_retries(sender, claim, "claiming deliveries") if requests else set()
    claimed_at = time.time()
    sender.spec.metrics.duplicates.inc(duplicates + len(requests) - len(claimed))
    to_send = [r for r in requests if r.messageId in claimed]
    settler = _Settler(sender)

    async def send_and_settle(request: SendRequest) -> None:
        so_far = (marks or {}).get(request.messageId)
        settler.add(await _send(sender, request, marks=so_far and (*so_far, claimed_at)))

    await settler.all_of(send_and_settle(r) for r in to_send)


async def _one_per_turn(sends: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Each send started in a turn of the event loop of its own, then all awaited. Started
    together (``gather``), a batch's 200 renders ran in one turn, 60-90 ms in which no
    SMTP reply was read and no connection moved: the loop's lag p99 went from 60-90 ms to
    about 7 ms, and P6 from 0.45-0.5 to about 0.6 of B4 (README, Benchmarks, P6)."""
    started: list[asyncio.Task[None]] = []
    try:
        for send in sends:
            started.append(asyncio.create_task(send))
            await asyncio.sleep(0)
        await asyncio.gather(*started)
    except asyncio.CancelledError:  # as gather does with what it was given
        for task in started:
            task.cancel()
        raise


async def _end_unreadable(sender: Sender, letters: Sequence[Letter]) -> None:
    """An unreadable send record that names its event ends it ``deliveryFailed`` with the
    reason, so every accepted event still reaches a final status."""
    writes = [StatusWrite(pkey, tenant, event_id, Status.DELIVERY_FAILED,
                          f"the send record could not be read ({reason})")
              for _, raw, reason in letters
              if (named := event_of_unreadable(raw)) for tenant, event_id, pkey in [named]]
    if writes:
        async def record() -> None:
            async with sender.db() as connection:
                await record_statuses(connection, writes)

        await _with_retries(sender, record, "ending unreadable records' events")


SETTLE_LINGER_S = 0.02  # how long a settle waits for more outcomes, unless it has enough
SETTLE_GATHER = 100


class _Settler:
    """Writes outcomes as they come: while one transaction is under way, the next ones
    queue up and go together in the following one. One writer at a time, so the
    sender's single connection is never used concurrently."""

    def __init__(self, sender: Sender, from_retries: bool = False) -> None:
        self._sender = sender
        self._pending: list[Outcome | Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        self._from_retries = from_retries  # settled messages leave the retry schedule
        self._last = asyncio.Event()  # every outcome is in: write what is pending now

    def add(self, outcome: Outcome | Waiting) -> None:
        self._pending.append(outcome)
        if self._writer is None or self._writer.done():
            if self._writer is not None and self._broke(self._writer):
                return  # drain raises it: the batch is handled again, nothing settled lost
            self._writer = asyncio.create_task(self._write())

    @staticmethod
    def _broke(writer: asyncio.Task[None]) -> bool:
        """A writer that failed is kept, not replaced: replaced, its error was never
        retrieved and the outcomes it held were dropped, their events left ``processing``
        with the batch committed (seen with PostgreSQL stopped under load)."""
        return writer.cancelled() or writer.exception() is not None

    async def _write(self) -> None:
        while self._pending:
            if len(self._pending) < SETTLE_GATHER and not self._last.is_set():
                # A moment for more to come while the batch still sends: outcomes come
                # one by one (a connection settles a message per round trip), and written
                # as they came, two to a statement, the settles cost PostgreSQL about
                # 170 us a message (P6). Not once the batch is done (drain): the next
                # batch is polled only when this one is settled.
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._last.wait(), SETTLE_LINGER_S)
            outcomes, self._pending = self._pending, []

            async def settle(batch: list[Outcome | Waiting] = outcomes) -> None:
                async with self._sender.db() as connection:
                    await _settle(connection, self._sender.spec.stage, batch,
                                  self._from_retries)

            await _with_retries(self._sender, settle, "settling deliveries")
            settled_at = time.time()
            for outcome in outcomes:
                trace = outcome.trace if isinstance(outcome, Outcome) else None
                if trace is not None and trace.timeline:
                    observe_one("settled", settled_at - trace.timeline[-1])

    async def all_of(self, sends: Iterable[Coroutine[Any, Any, None]]) -> None:
        """Runs the sends (each adds its outcome), then writes what is left at once,
        whether or not a send failed, and waits for it (drain)."""
        try:
            await _one_per_turn(sends)
        finally:
            self._last.set()  # what it holds goes now, without gathering more
        await self.drain()

    async def drain(self) -> None:
        self._last.set()
        while self._writer is not None and not self._writer.done():
            await self._writer
        if self._writer is not None:
            self._writer.result()  # surface a failure


async def _settle(connection: asyncpg.Connection, stage: str, batch: list[Outcome | Waiting],
                  from_retries: bool) -> None:
    """Outcomes, and messages to try again later, in one transaction (one statement more
    only when the batch has either of the latter)."""
    settled = [o for o in batch if isinstance(o, Outcome)]
    waiting = [w for w in batch if isinstance(w, Waiting)]
    if not waiting and not from_retries:
        await delivery_ledger.settle(connection, settled)
        return
    async with connection.transaction():
        await delivery_ledger.settle(connection, settled)
        if from_retries:
            await send_retries.forget(connection, [o.message_id for o in settled])
        await send_retries.schedule(connection, stage, waiting)


async def deliver_due(sender: Sender, due: Sequence[Due]) -> None:
    """Messages of the retry schedule come due (already claimed again), each tried once
    more; settled, or scheduled again, as they come."""
    settler = _Settler(sender, from_retries=True)

    async def send_and_settle(retry: Due) -> None:
        try:
            request = SendRequest.model_validate(retry.record)
        except ValidationError as error:  # not one of ours any more: it cannot go
            settler.add(Outcome(retry.message_id, False,
                                f"the retry's send record could not be read: "
                                f"{error.error_count()} errors", None))
            return
        settler.add(await _send(sender, request, retry))

    await settler.all_of(send_and_settle(d) for d in due)


async def _later(sender: Sender, request: SendRequest, error: TransientFailure,
                 soft: list[TransientFailure], retry: Due | None) -> Outcome | Waiting:
    """A refusal for now: the message waits in the retry schedule, or fails past the
    limit (counting one soft failure of its address if any refusal blamed it)."""
    spec = sender.spec
    spec.metrics.retries(spec.provider).inc()
    attempts = (retry.attempts if retry else 0) + 1
    soft_error = (retry and retry.soft_error) or (str(soft[0]) if soft else None)
    delay_s = sender.retry_policy.next_delay_s(attempts, random.random())
    if delay_s is not None and error.retry_after_s:  # the provider said when (a rate limit)
        delay_s = max(delay_s, error.retry_after_s)
    if delay_s is None:
        failure = soft_error and await _address_failure(sender, request, "soft", soft_error)
        return _failed(sender, request, f"{spec.provider}_retries_exhausted",
                       f"no delivery after {attempts} attempts, the last: {error}",
                       stage="handover", address_failure=failure or None)
    return Waiting(request.tenant, request.messageId, request.model_dump(mode="json"),
                   attempts, delay_s, str(error), soft_error,
                   f"{error}; attempt {attempts}, next in {delay_s:.1f} s")


async def _with_retries(sender: Sender, operation: Callable[[], Awaitable[T]], what: str) -> T:
    retries = sender.spec.metrics.retries("database")
    return await retry_forever(operation, what, _DB_OR_KAFKA, on_retry=retries.inc)


async def _compiled_template(
    sender: Sender, request: SendRequest
) -> tuple[LocalisedMessage, EventConfig, ProfileSchema] | None:
    """The message version decided for it (the live one for a record of version 1), its
    default content and locale variants compiled, and what types its values: the event's
    fields, the tenant's profile schema."""
    owner = request.template_owner
    published = owner and await sender.catalog.get(request.tenant, owner)
    if not published or published.template is None or published.message_version is None:
        return None
    version = request.template.version if request.template else published.message_version
    profile_schema = (await sender.profile_schemas.get(request.tenant)).schema
    if version != published.message_version:  # a newer version went live since: rare
        template = await load_message_template(
            sender.pool, request.tenant, published.config.event_id, version)
        if template is None:
            return None
        return compile_localised(request.channel, template), published.config, profile_schema
    # Keyed by content too: an event deleted and created again numbers its versions anew.
    key = (request.tenant, published.config.event_id, encode(published.template))
    if key not in sender.templates:
        sender.templates[key] = compile_localised(request.channel, published.template)
    return sender.templates[key], published.config, profile_schema


def _outcome(
    request: SendRequest, status: Status, reason: str | None = None, reference: str | None = None,
    *, stage: str = "handover", rule_id: str | None = None, trace_reason: str | None = None,
    address_failure: AddressFailure | None = None, marks: tuple[float, ...] | None = None,
) -> Outcome:
    """The ledger keeps the failure's reason, or the provider's reference for the message;
    the trace and the contact history the same (``trace_reason`` when it says it shorter)."""
    event = request.event
    write = event and StatusWrite(event.pKey, request.tenant, event.eventId, status, reason,
                                  request.messageId)
    settled: Settled = ("delivered" if status is Status.PROCESSED
                        else "excluded" if status is Status.EXCLUDED else "failed")
    trace = MessageOutcome(request.tenant, request.messageId, settled, stage, rule_id,
                           trace_reason or reason or reference, marks)
    return Outcome(request.messageId, status is Status.PROCESSED, reason or reference, write,
                   trace, address_failure)


def _failed(
    sender: Sender, request: SendRequest, metric: str, reason: str, stage: str = "render",
    address_failure: AddressFailure | None = None,
) -> Outcome:
    sender.spec.metrics.failed(metric).inc()
    return _outcome(request, Status.DELIVERY_FAILED, reason, stage=stage,
                    address_failure=address_failure)


async def _tenant_rules(sender: Sender, request: SendRequest) -> TenantRules:
    return await _with_retries(sender, lambda: sender.rules.get(request.tenant),
                               "loading the delivery rules")


async def _controlled(
    sender: Sender, request: SendRequest, rendered: RenderedMessage
) -> Outcome | None:
    """The message's typology's control rules, in order: the first that fails excludes it
    (None: it may go)."""
    if request.typology is None:
        return None
    rules = await _tenant_rules(sender, request)
    for rule_id, rule in rules.controls(request.typology):
        failures = control_failures(rendered, rule, sender.settings.allow_http_links)
        if failures:
            sender.spec.metrics.rule_outcome(RuleKind.CONTROL, rule_id, "excluded").inc()
            why = failures[0].reason
            return _outcome(request, Status.EXCLUDED, f"rule {rule_id} (control): {why}",
                            stage="control", rule_id=rule_id, trace_reason=why)
    return None


async def _address_failure(
    sender: Sender, request: SendRequest, kind: FailureKind, reason: str
) -> AddressFailure | None:
    """What a refusal that blames the address feeds quarantine, with the tenant's
    thresholds."""
    channel = request.channel.value
    address = recipient_address(channel, request.to)
    if not address:
        return None
    settings = (await _tenant_rules(sender, request)).settings.quarantine
    return AddressFailure(request.tenant, channel, normalise(channel, address), kind, reason,
                          settings)


def _with_locale(note: str | None, locale: LocaleChoice) -> str | None:
    """The trace says which locale variant went, when one did."""
    if locale.locale is None:
        return note
    return f"{note or 'accepted'}; locale {locale.locale}"


async def _send(sender: Sender, request: SendRequest, retry: Due | None = None,
                marks: tuple[float, ...] | None = None) -> Outcome | Waiting:
    """``marks``: its timeline up to its claim (accepted ... claimed), when known."""
    spec = sender.spec
    event = request.origin.model_dump(exclude={"kind"})  # {eventId, pKey} for an event's
    try:
        found = await _with_retries(sender, lambda: _compiled_template(sender, request),
                                    "loading the template")
        if found is None:
            return _failed(sender, request, "not_published", "the event's message is not published")
        localised, config, profile_schema = found
        compiled, locale = localised.choose(wanted_locale(request.locale, request.profile))
        # The record carries ctx and the profile as JSON (decimals as strings); the template
        # sees them typed by the event's fields and the tenant's profile schema, exactly as
        # the preview does: what it shows is what goes.
        ctx = typed_ctx(config, orjson.dumps(request.ctx))
        profile = request.profile and typed_attributes(profile_schema, request.profile)
        rendered = render_message(compiled, template_context(ctx, profile, event))
    except RenderError as error:
        return _failed(sender, request, "render", f"template error: {error}")
    except ValidationError as error:  # the fields changed since the event was accepted
        return _failed(sender, request, "ctx", f"ctx no longer matches the event's fields: "
                                               f"{invalid_reason(error)}")
    excluded = await _controlled(sender, request, rendered)
    if excluded is not None:
        return excluded
    # After the control rules, which judge the links the author wrote, not ours.
    rendered = await _with_retries(
        sender, lambda: tracked(sender.pool, sender.settings, request, rendered),
        "storing tracked links")
    rendered_at = time.time()

    soft: list[TransientFailure] = []  # the first refusal that blamed the address

    async def hand_over() -> str | None:
        try:
            return await sender.provider.hand_over(request, rendered)
        except TransientFailure as error:
            if error.address_fault and not soft:
                soft.append(error)
            raise

    try:
        # Every provider failing (their breakers open): the batch waits for a probe's
        # success rather than filling the retry schedule with what none can take now.
        reference = await retry_forever(
            hand_over, f"handing a message over ({spec.provider})", (ProvidersDown,),
            on_retry=spec.metrics.retries(spec.provider).inc)
    except TransientFailure as error:
        return await _later(sender, request, error, soft, retry)
    except PermanentFailure as error:
        hard = error.address_fault and await _address_failure(sender, request, "hard",
                                                              str(error))
        why = str(error)  # the device is gone: the profile forgets it
        await _with_retries(sender, lambda: device_gone(sender.pool, request, why),
                            "forgetting an unregistered device")
        return _failed(sender, request, f"{spec.provider}_permanent", str(error),
                       stage="handover", address_failure=hard or None)
    handed_at = time.time()
    spec.metrics.accepted_to_provider(request.priority).observe(handed_at - request.acceptedAt)
    if marks is not None:
        marks = (*marks, rendered_at, handed_at)
        observe(marks, _SENDER_STAGES)
    spec.metrics.sent(request.priority).inc()
    # Retried until the server took it, the message still counts one soft failure of its
    # address (one per message, however many retries).
    soft_error = (retry and retry.soft_error) or (str(soft[0]) if soft else None)
    failure = soft_error and await _address_failure(sender, request, "soft", soft_error)
    return _outcome(request, Status.PROCESSED, reference=reference,
                    trace_reason=_with_locale(handover_note(request, rendered, reference),
                                              locale),
                    address_failure=failure or None, marks=marks)
