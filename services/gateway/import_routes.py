"""``POST /v1/profiles/import`` (a ``profiles`` key): a CSV (``text/csv``, with a header)
or NDJSON (``application/x-ndjson``) file of profiles, streamed in the request body.

Each row is checked as it arrives against the tenant's schema by the profile API's rules
(``shared/domain/profile_import.py``); valid rows go on to PostgreSQL by ``COPY`` into a
staging table, and once the body has ended they are merged into the profiles by last
writer wins, the import's timestamp being when it began. All in one transaction: a body
that ends early, breaks off or exceeds the bound, or any failure, writes nothing.

The answer is NDJSON: a first line ``{"summary": {"read", "inserted", "updated",
"unchanged", "rejected", …}}``, then one line per rejected row ``{"line", "profileId",
"field", "reason", "errors"}``.
"""

from __future__ import annotations

import asyncio
import codecs
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

# Rows are checked on the event loop: it is handed back every TURN_ROWS rows (~10 ms).
TURN_ROWS = 500
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
        self._yielded = 0

    def _reject(self, reject: Reject) -> None:
        self.rejected += 1
        self.rejects.write(json.dumps(reject.as_json(), ensure_ascii=False).encode() + b"\n")

    def _accept(self, outcome: Row | Reject | None) -> tuple[Any, ...] | None:
        if outcome is None:
            return None
        self.read += 1
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
                if (record := self._accept(self.reader.csv_row(line, cells))):
                    yield record
        except HeaderError as error:
            raise _Refused(422, str(error)) from None

    async def records(self) -> AsyncIterator[tuple[Any, ...]]:
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        splitter = CsvRecords() if self.media == CSV else NdjsonLines()
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
                yield record
                self._yielded += 1
                if self._yielded % TURN_ROWS == 0:
                    await asyncio.sleep(0)  # other requests' turn (events, reads)
        try:
            text = decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise _Refused(400, "not UTF-8: the file ends inside a character") from None
        for record in self._rows(splitter, text, True):
            yield record
        if self.media == CSV and not self._header_read:
            raise _Refused(422, "the file is empty: a CSV file starts with its header")


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
    try:
        async with gateway.pool.acquire() as connection, connection.transaction():
            await profile_import_store.stage(connection, job.records())
            copied = time.monotonic()
            loaded = await profile_import_store.merge(connection, caller.tenant, written_at,
                                                      job.consent)
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
               "copySeconds": round(copied - began, 3),
               "mergeSeconds": round(time.monotonic() - copied, 3),
               "writtenAt": written_at.isoformat()}
    return StreamingResponse(_answer(summary, job.rejects, extra),
                             media_type="application/x-ndjson")
