"""One signed call to an endpoint. The name is resolved here and the call goes to an
address that was checked (a name that resolves to a public address for the check and to
an internal one for the call — DNS rebinding — cannot slip through): the URL's host
stays in the Host header and in TLS (SNI and certificate check)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from shared.bounded import BoundedDict
from shared.domain import outbound_webhooks as wh

ERROR_TEXT = 300  # characters of an answer's body kept in the log
KEEP_READING = 16_384
USER_AGENT = "Parcours-Webhooks/1"


@dataclass(frozen=True)
class Outcome:
    http_status: int | None
    latency_ms: int
    error: str | None


class Refused(Exception):
    pass


# Names resolved in the last minute (the resolver's thread hop costs more than a call to a
# near endpoint); what was checked is what is called.
_RESOLVED: BoundedDict[tuple[str, int], tuple[float, list[str]]] = BoundedDict(10_000)
RESOLVED_FOR_S = 60.0


async def _resolve(host: str, port: int) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    hit = _RESOLVED.get((host, port))
    if hit is not None and time.monotonic() - hit[0] < RESOLVED_FOR_S:
        return hit[1]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise Refused(f"{host} does not resolve ({error.strerror})") from None
    addresses = [str(info[4][0]) for info in infos]
    _RESOLVED[(host, port)] = (time.monotonic(), addresses)
    return addresses


async def _address(host: str, port: int, allow_local: bool) -> str:
    addresses = await _resolve(host, port)
    if not allow_local:
        refused = [a for a in addresses if wh.address_refused(a)]
        if refused:
            raise Refused(f"{host} resolves to {refused[0]}, a loopback, private or reserved"
                          " address (allowed only where the service runs with"
                          " --allow-local-targets: development and tests)")
    return addresses[0]


async def call(client: httpx.AsyncClient, url: str, headers: dict[str, str], body: bytes,
               timeout_s: float, allow_local: bool, method: str = "POST") -> Outcome:
    """One call (a webhook's, or a journey's HTTP action: ``method``)."""
    began = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):  # in all: a server dripping bytes included
            return await _call(client, url, headers, body, allow_local, began, method)
    except Refused as error:
        return Outcome(None, _ms(began), f"refused: {error}")
    except TimeoutError:
        return Outcome(None, _ms(began), f"no answer within {timeout_s:g} s")
    except httpx.HTTPError as error:
        return Outcome(None, _ms(began), f"{type(error).__name__}: {error}"[:ERROR_TEXT])


async def _call(client: httpx.AsyncClient, url: str, headers: dict[str, str], body: bytes,
                allow_local: bool, began: float, method: str = "POST") -> Outcome:
    parts = urlsplit(url)
    if parts.scheme != "https" and not allow_local:
        raise Refused("http:// is allowed only where the service runs with"
                      " --allow-local-targets (development and tests); use https://")
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = await _address(host, port, allow_local)
    literal = f"[{address}]" if ":" in address else address
    pinned = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
    host_header = parts.netloc.rpartition("@")[2]
    request = client.build_request(
        method, pinned, content=None if method in ("GET", "DELETE") else body,
        headers={**headers, "host": host_header, "content-type": "application/json",
                 "user-agent": USER_AGENT},
        extensions={"sni_hostname": host})
    response = await client.send(request, stream=True)
    try:
        # An answer read to its end keeps the connection for the next call; a longer one
        # than this is not read (the connection is closed instead).
        text = b""
        async for chunk in response.aiter_bytes():
            text += chunk
            if len(text) > KEEP_READING:
                break
        if wh.succeeded(response.status_code):
            return Outcome(response.status_code, _ms(began), None)
        reason = text[:ERROR_TEXT].decode(errors="replace").strip()
        return Outcome(response.status_code, _ms(began),
                       f"HTTP {response.status_code}" + (f": {reason}" if reason else ""))
    finally:
        await response.aclose()


def _ms(began: float) -> int:
    return round((time.monotonic() - began) * 1000)
