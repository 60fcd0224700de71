"""The hosts a tenant's journeys may call with an http action (its allow-list), through
the admin API. An entry is a host name (``api.crm.example.com``), one leading wildcard
label (``*.crm.example.com``: subdomains only) or an IP address listed literally, each
with an optional ``:port`` (without, the URL scheme's default only); at most 100. A 422
names each bad entry and says what to write instead. An http node whose host is not
listed is an error when its journey is validated, and the engine refuses the call
(``httpFailed``) if its host was removed after publishing.

    GET /admin/v1/journey-http-hosts   {"hosts": [...]}, normalised (IDNA, lower case)
    PUT /admin/v1/journey-http-hosts   {"hosts": [...]}: the whole list, replaced
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from services.admin.dependencies import AdminCaller, Db
from shared.adapters import journey_http_hosts_store as store
from shared.domain.journeys.http_hosts import MAX_HOSTS, HostEntry, HostEntryError, parse_entry

router = APIRouter(prefix="/admin/v1/journey-http-hosts", tags=["journeys"])


class Hosts(BaseModel):
    hosts: list[str]


@router.get("", response_model=Hosts)
async def get_hosts(caller: AdminCaller, connection: Db) -> Hosts:
    return Hosts(hosts=await store.read(connection, caller.tenant))


@router.put("", response_model=Hosts)
async def put_hosts(body: Hosts, caller: AdminCaller, connection: Db) -> Hosts:
    """Replace the list; the answer is the list as stored (normalised, duplicates once)."""
    if len(body.hosts) > MAX_HOSTS:
        raise RequestValidationError([{
            "type": "too_long", "loc": ("body", "hosts"),
            "msg": f"{len(body.hosts)} hosts: at most {MAX_HOSTS}; use a wildcard"
                   " ('*.example.com') for many subdomains of one domain"}])
    entries: dict[HostEntry, None] = {}
    bad = []
    for index, text in enumerate(body.hosts):
        try:
            entries.setdefault(parse_entry(text))
        except HostEntryError as error:
            bad.append({"type": "host", "loc": ("body", "hosts", index), "input": text,
                        "msg": str(error)})
    if bad:
        raise RequestValidationError(bad)
    await store.replace(connection, caller.tenant, list(entries))
    return Hosts(hosts=[str(e) for e in entries])
