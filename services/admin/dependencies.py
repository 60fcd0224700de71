"""What every admin route depends on: an admin key of the caller's tenant, and a
transaction that commits before the answer is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from services.admin.storable import storable
from shared.api_auth import Caller, require
from shared.domain.api_keys import Scope

AdminCaller = Annotated[Caller, Depends(require(Scope.ADMIN))]


async def transaction(
    request: Request, _storable: Annotated[None, Depends(storable)]
) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a transaction, once the request holds nothing PostgreSQL would refuse
    to store (``storable``: a 422 naming the field)."""
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as connection, connection.transaction():
        yield connection


# scope="function": the transaction commits when the route returns, before the answer is
# sent. FastAPI's default ("request") closes it after the answer went out, so a client's
# next call could miss what a 200 had just reported (about 1 in 4 under load), and a
# failed commit came after a success.
Db = Annotated[asyncpg.Connection, Depends(transaction, scope="function")]


def body_errors(error: ValidationError) -> RequestValidationError:
    """A model's errors on a body read as a plain dict (a journey, a journey event type),
    answered as FastAPI answers a body model's: a 422 at ``["body", …]``."""
    return RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                   for e in error.errors(include_url=False)])
