"""``POST /v1/profiles/import`` (a ``profiles`` key): a CSV (``text/csv``, with a header)
or NDJSON (``application/x-ndjson``) file of profiles, streamed in the request body.

Each row is checked as it arrives against the tenant's schema by the profile API's rules
(``shared/domain/profile_import.py``); valid rows go on to PostgreSQL by ``COPY`` into a
staging table, a slice of SLICE_ROWS rows at a time, and each slice is merged into the
profiles by last writer wins (the import's timestamp being when it began) while the rows
of the next are checked: the reading (this process's core) and the merging (PostgreSQL's)
overlap. All in one transaction: a body that ends early, breaks off or exceeds the bound,
or any failure, writes nothing.

The answer is NDJSON: a first line ``{"summary": {"read", "inserted", "updated",
"unchanged", "rejected", …}}``, then one line per rejected row ``{"line", "profileId",
"field", "reason", "errors"}``.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import itertools
import json
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import StreamingResponse

from services.gateway.wiring import Gateway
from shared.adapters import consent_store, profile_import_store
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.api_auth import Caller, require
from shared.domain.api_keys import Scope
from shared.domain.profile_import import (
    CsvRecords,
    HeaderError,
    NdjsonLines,
    Reject,
    Row,
    RowReader,
    staging_record,
)

# Rows are checked on the event loop: it is handed back every TURN_ROWS rows (~5 ms).
TURN_ROWS = 500
# Rows merged at a time; while a slice merges, up to as many are read ahead (in memory).
SLICE_ROWS = 50_000
_END = object()
MAX_IMPORT_BYTES = 4 * 1024 ** 3  # 4 GiB: about 40 million rows of a typical CSV
CSV, NDJSON = "text/csv", "application/x-ndjson"
_MEDIA = {"text/csv": CSV, "application/csv": CSV, "application/x-ndjson": NDJSON,
          "application/ndjson": NDJSON, "application/jsonl": NDJSON}

router = APIRouter(prefix="/v1/profiles", tags=["profiles"])
ProfilesCaller = Annotated[Caller, Depends(require(Scope.PROFILES))]


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class _Import:
    """One import's reading: rows in, valid records out, rejects spooled to a file."""

    def __init__(self, request: Request, media: str, reader: RowReader) -> None:
        self.request, self.media, self.reader = request, media, reader
        self.read = 0
        self.rejected = 0
        self.bytes = 0
        self.consent: list[tuple[int, consent_store.Change]] = []
        self.rejects: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
        self._header_read = False
        self.read_seconds = 0.0

    def _reject(self, reject: Reject) -> None:
        self.rejected += 1
        self.rejects.write(json.dumps(reject.as_json(), ensure_ascii=False).encode() + b"\n")

    def _accept(self, outcome: tuple[Any, ...] | Row | Reject | None
                ) -> tuple[Any, ...] | None:
        if outcome is None:
            return None
        self.read += 1
        if isinstance(outcome, tuple):  # a plain row, checked the quick way
            return outcome
        if isinstance(outcome, Reject):
            self._reject(outcome)
            return None
        write = outcome.write
        for change in write.consent:
            self.consent.append((outcome.line, (write.profile_id, change, write.source)))
        return staging_record(outcome)

    def _rows(self, splitter: CsvRecords | NdjsonLines, text: str, final: bool
              ) -> Iterator[tuple[Any, ...]]:
        try:
            if isinstance(splitter, NdjsonLines):
                for line, item in splitter.feed(text, final):
                    if (record := self._accept(self.reader.ndjson_row(line, item))):
                        yield record
                return
            records = splitter.feed(text, final)
            if not self._header_read and splitter.header is not None:
                self.reader.csv_header(splitter.header)
                self._header_read = True
            for line, cells in records:
                if (record := self._accept(self.reader.csv_record(line, cells))):
                    yield record
        except HeaderError as error:
            raise _Refused(422, str(error)) from None

    async def _records(self) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The valid rows' staging records, TURN_ROWS at a time."""
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        splitter = CsvRecords() if self.media == CSV else NdjsonLines()
        batch: list[tuple[Any, ...]] = []
        async for chunk in self.request.stream():
            self.bytes += len(chunk)
            if self.bytes > MAX_IMPORT_BYTES:
                raise _Refused(413, f"the file is over {MAX_IMPORT_BYTES} bytes; split it")
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as error:
                raise _Refused(400, f"not UTF-8 near byte {self.bytes - len(chunk) + error.start}"
                               ) from None
            for record in self._rows(splitter, text, False):
                batch.append(record)
                if len(batch) == TURN_ROWS:
                    yield batch
                    batch = []
        try:
            text = decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise _Refused(400, "not UTF-8: the file ends inside a character") from None
        batch.extend(self._rows(splitter, text, True))
        if self.media == CSV and not self._header_read:
            raise _Refused(422, "the file is empty: a CSV file starts with its header")
        if batch:
            yield batch

    async def fill(self, queue: asyncio.Queue[Any]) -> None:
        """Read the body into ``queue`` (batches of records, then _END or the exception
        that ended the reading); the queue's bound holds the reading back."""
        try:
            async for batch in self._records():
                await queue.put(batch)
                await asyncio.sleep(0)  # other requests' turn (events, reads)
            await queue.put(_END)
        except Exception as error:  # handed to the merging side, which raises it
            await queue.put(error)
        self.read_seconds = time.monotonic()


class _Slice:
    """The records of one slice, taken from the queue; what is known of their ids."""

    def __init__(self, queue: asyncio.Queue[Any]) -> None:
        self.queue = queue
        self.rows = 0
        self.ended = False  # the body's last batch was taken
        self.ids: set[str] = set()
        self.low: str | None = None
        self.high: str | None = None

    @property
    def repeats(self) -> bool:
        return len(self.ids) < self.rows

    async def records(self) -> AsyncIterator[tuple[Any, ...]]:
        while self.rows < SLICE_ROWS:
            batch = await self.queue.get()
            if batch is _END:
                self.ended = True
                return
            if isinstance(batch, BaseException):
                raise batch
            ids = [record[1] for record in batch]
            self.ids.update(ids)
            self.rows += len(batch)
            low, high = min(ids), max(ids)
            self.low = low if self.low is None else min(low, self.low)
            self.high = high if self.high is None else max(high, self.high)
            for record in batch:
                yield record
            await asyncio.sleep(0)


def _overlapping(ranges: list[tuple[str, str]]) -> bool:
    """Whether two slices' ranges of profile ids overlap (they may share a profile)."""
    ranges = sorted(ranges)
    return any(later[0] <= earlier[1] for earlier, later in itertools.pairwise(ranges))


def _answer(summary: dict[str, Any], rejects: IO[bytes], extra: list[Reject]
            ) -> Iterator[bytes]:
    yield json.dumps({"summary": summary}).encode() + b"\n"
    rejects.seek(0)
    while chunk := rejects.read(256 * 1024):
        yield chunk
    for reject in extra:
        yield json.dumps(reject.as_json(), ensure_ascii=False).encode() + b"\n"
    rejects.close()


@router.post("/import", responses={200: {"description": (
    "NDJSON: {\"summary\": {read, inserted, updated, unchanged, rejected}}, then a line per"
    " rejected row {line, profileId, field, reason}")}}, openapi_extra={"requestBody": {
        "required": True, "content": {CSV: {"schema": {"type": "string"}},
                                      NDJSON: {"schema": {"type": "string"}}}}})
async def import_profiles(request: Request, caller: ProfilesCaller) -> StreamingResponse:
    """Import profiles from CSV (header of the API's names: profileId, email, firstName,
    …, attributes by name) or NDJSON (a batch item per line), each row a merge; nothing
    is written unless the whole file is read. Re-importing a file changes nothing."""
    media = _MEDIA.get(request.headers.get("content-type", "").partition(";")[0]
                       .strip().lower())
    if media is None:
        raise HTTPException(415, "send text/csv (with a header) or application/x-ndjson")
    gateway: Gateway = request.app.state.gateway
    began = time.monotonic()
    written_at = datetime.now(UTC)
    tenant_schema = await gateway.profile_schemas.get(caller.tenant)
    job = _Import(request, media, RowReader(tenant_schema.schema, tenant_schema.model))
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=SLICE_ROWS // TURN_ROWS)
    copy_seconds = merge_seconds = 0.0
    reading: asyncio.Task[None] | None = None
    copying: asyncio.Task[tuple[str, _Slice, float]] | None = None
    staging: profile_import_store.Staging | None = None

    async def copy(number: int) -> tuple[str, _Slice, float]:
        assert staging is not None
        part, mark = _Slice(queue), time.monotonic()
        table = await profile_import_store.stage(staging, number, part.records())
        return table, part, time.monotonic() - mark

    try:
        async with gateway.pool.acquire() as staging_connection:
            staging = await profile_import_store.open_staging(staging_connection,
                                                              caller.tenant)
            try:
                async with gateway.pool.acquire() as connection, connection.transaction():
                    await profile_import_store.begin(connection)
                    reading = asyncio.create_task(job.fill(queue))
                    loaded = profile_import_store.Loaded()
                    ranges: list[tuple[str, str]] = []
                    copying = asyncio.create_task(copy(0))
                    while copying is not None:
                        table, part, seconds = await copying
                        copy_seconds += seconds
                        # the next slice is copied while this one merges
                        copying = (None if part.ended
                                   else asyncio.create_task(copy(loaded.slices + 1)))
                        mark = time.monotonic()
                        if part.rows:
                            await profile_import_store.merge(
                                connection, table, caller.tenant, written_at, loaded,
                                part.rows, part.repeats)
                            ranges.append((part.low or "", part.high or ""))
                        merge_seconds += time.monotonic() - mark
                    mark = time.monotonic()
                    loaded = await profile_import_store.finish(
                        connection, staging, caller.tenant, written_at, loaded,
                        _overlapping(ranges), job.consent)
                    merge_seconds += time.monotonic() - mark
            finally:
                for task in (copying, reading):
                    if task is not None and not task.done():
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
                with contextlib.suppress(*DB_UNAVAILABLE):
                    await profile_import_store.close_staging(staging)
    except _Refused as refused:
        job.rejects.close()
        raise HTTPException(refused.status, f"{refused.detail}; nothing was imported"
                            ) from None
    except DB_UNAVAILABLE as error:
        job.rejects.close()
        raise HTTPException(503, "the profile store is unavailable; nothing was imported,"
                                 " retry", headers={"Retry-After": "1"}) from error
    extra = [Reject(line, profile_id, "profileId", "a test profile's id: test profiles are"
                    " written through the admin API") for line, profile_id in loaded.test_ids]
    extra += [Reject(line, profile_id, "profileId", f"the profile is on line {last} too;"
                     " the last line is the one imported")
              for line, profile_id, last in loaded.repeated]
    seconds = time.monotonic() - began
    summary = {"read": job.read, "inserted": loaded.inserted, "updated": loaded.updated,
               "unchanged": loaded.unchanged, "rejected": job.rejected + len(extra),
               "bytes": job.bytes, "seconds": round(seconds, 3),
               "readSeconds": round(job.read_seconds - began, 3),
               "copySeconds": round(copy_seconds, 3), "mergeSeconds": round(merge_seconds, 3),
               "slices": loaded.slices, "remerged": loaded.remerged,
               "writtenAt": written_at.isoformat()}
    return StreamingResponse(_answer(summary, job.rejects, extra),
                             media_type="application/x-ndjson")
