"""The hosts a tenant's journeys may call (an ``http`` node's URL): its allow-list.

An entry is a host name (``api.crm.example.com``), a host name under one leading wildcard
label (``*.crm.example.com``: its subdomains at any depth, never ``crm.example.com``
itself), or an IP address (``203.0.113.7``, ``[2001:db8::1]``: matched only by that
address written in the URL), each optionally with ``:port``. Without a port an entry allows
the URL scheme's default port only (443 for https, 80 for http).

Names are compared as IDNA ASCII in lower case (``Bücher.Example`` is
``xn--bcher-kva.example``), a trailing dot dropped. A URL carrying user info
(``user:password@host``) is never allowed, nor one whose port is not a number.

Pure: no I/O. The engine re-checks a call's URL against the tenant's list when it calls
(the list may have changed since the journey was published); validation checks the draft.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna

MAX_HOSTS = 100
DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_NUMERIC = re.compile(r"^[0-9.]+$|^0x", re.IGNORECASE)


class HostEntryError(ValueError):
    """An entry that is not a host: the message says what to write instead."""


@dataclass(frozen=True)
class HostEntry:
    host: str  # IDNA ASCII, lower case; an IP address in its compressed form
    wildcard: bool = False  # "*.host": subdomains of host only
    port: int | None = None  # None: the URL scheme's default
    ip: bool = False

    def __str__(self) -> str:
        host = f"[{self.host}]" if self.ip and ":" in self.host else self.host
        text = f"*.{host}" if self.wildcard else host
        return f"{text}:{self.port}" if self.port is not None else text

    def matches(self, host: str, is_ip: bool, port: int, default_port: int) -> bool:
        if port != (self.port if self.port is not None else default_port):
            return False
        if is_ip or self.ip:
            return is_ip and self.ip and host == self.host
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


def _name(text: str) -> str:
    """A host name as IDNA ASCII in lower case, or HostEntryError saying why not."""
    text = text.rstrip(".")
    try:
        ascii_name = idna.encode(text, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as error:
        raise HostEntryError(f"{text!r} is not a host name ({error})") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise HostEntryError(f"{text!r} is not a host name: labels of letters, digits and"
                             " '-' separated by dots, such as 'api.example.com'")
    if _NUMERIC.match(ascii_name):
        raise HostEntryError(f"{text!r} is neither a host name nor an IP address: write"
                             " the address in full, such as '203.0.113.7'")
    return ascii_name


def _ip(text: str) -> str | None:
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return None


def _split_port(text: str) -> tuple[str, int | None]:
    """``host[:port]`` (an IPv6 address in brackets) → (host, port)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise HostEntryError(f"{text!r}: an IPv6 address is written in brackets,"
                                 " such as '[2001:db8::1]' or '[2001:db8::1]:8443'")
        host, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise HostEntryError(f"{text!r}: after ']' only ':port' may follow")
        port_text = rest[1:] if rest else None
        if _ip(host) is None or ":" not in host:
            raise HostEntryError(f"{text!r}: only an IPv6 address goes in brackets")
    elif text.count(":") > 1:
        raise HostEntryError(f"{text!r}: write an IPv6 address in brackets, such as"
                             f" '[{text}]'")
    else:
        host, _, port_text = text.partition(":")
        port_text = port_text if ":" in text else None
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise HostEntryError(f"{text!r}: a port is a number from 1 to 65535, such as"
                             f" '{host}:8443'")
    return host, int(port_text)


def parse_entry(text: str) -> HostEntry:
    """One entry as written (see the module), or HostEntryError saying what to write."""
    text = text.strip()
    if not text:
        raise HostEntryError("an empty entry: write a host, such as 'api.example.com'")
    if "://" in text or any(c in text for c in "/?#@ "):
        host = urlsplit(text if "://" in text else f"https://{text}").hostname
        instead = f": write {host!r}" if host else ""
        raise HostEntryError(f"{text!r} is not a host (no scheme, path, user or spaces)"
                             f"{instead}")
    host, port = _split_port(text)
    wildcard = host.startswith("*.")
    if wildcard:
        host = host[2:]
    if "*" in host:
        raise HostEntryError(f"{text!r}: a wildcard is only a whole first label, such as"
                             " '*.example.com' (its subdomains)")
    if (address := _ip(host)) is not None:
        if wildcard:
            raise HostEntryError(f"{text!r}: an IP address takes no wildcard: list each"
                                 f" address, such as '{host}'")
        return HostEntry(address, port=port, ip=True)
    name = _name(host)
    if wildcard and "." not in name:
        raise HostEntryError(f"{text!r}: a wildcard covers the subdomains of a domain,"
                             f" such as '*.example.{name}'")
    return HostEntry(name, wildcard, port)


def parse_entries(texts: Sequence[str]) -> list[HostEntry]:
    """Every entry (duplicates once, in the order given), or HostEntryError naming the
    first bad one with its position; at most MAX_HOSTS."""
    if len(texts) > MAX_HOSTS:
        raise HostEntryError(f"{len(texts)} hosts: at most {MAX_HOSTS}; use a wildcard"
                             " ('*.example.com') for many subdomains of one domain")
    entries: dict[HostEntry, None] = {}
    for index, text in enumerate(texts):
        try:
            entries.setdefault(parse_entry(text))
        except HostEntryError as error:
            raise HostEntryError(f"hosts[{index}]: {error}") from None
    return list(entries)


@dataclass(frozen=True)
class Target:
    """Where a URL goes: its host normalised as entries are, and its port."""
    host: str
    ip: bool
    port: int
    default_port: int

    def __str__(self) -> str:
        """The entry that would allow it."""
        host = f"[{self.host}]" if self.ip and ":" in self.host else self.host
        return host if self.port == self.default_port else f"{host}:{self.port}"


def target(url: str) -> Target | None:
    """The URL's host and port; None when it cannot be allowed (not http(s), no host,
    user info, a port that is not a number, a host that is not a name or an address)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    default = DEFAULT_PORTS.get(parts.scheme.lower())
    if default is None or "@" in parts.netloc or not parts.hostname:
        return None
    address = _ip(parts.hostname)
    if address is not None:
        return Target(address, True, port if port is not None else default, default)
    try:
        name = _name(parts.hostname)
    except HostEntryError:
        return None
    return Target(name, False, port if port is not None else default, default)


def allowed(url: str, entries: Iterable[HostEntry]) -> bool:
    """Whether the URL's host and port are on the list."""
    where = target(url)
    return where is not None and any(
        e.matches(where.host, where.ip, where.port, where.default_port) for e in entries)


def refusal(url: str) -> str:
    """Why the URL is not allowed, and what to do (for a URL ``allowed`` refused)."""
    where = target(url)
    if where is None:
        return (f"{url!r} cannot be allow-listed: an http(s) URL with a host name or an IP"
                " address, no user info (user:password@)")
    return (f"host {where} is not allow-listed: add {where} with"
            " PUT /admin/v1/journey-http-hosts")
