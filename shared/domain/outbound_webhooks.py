"""Outbound webhooks: what a tenant's own systems are told, when, and how they can trust it.

A subscription names an endpoint and filters (event ids, channels, status values, reaction
kinds); every status change and reaction it matches becomes one notification, posted with
``Parcours-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 over "<t>.<body>">`` (Stripe's
scheme; during a secret's rotation one ``v1`` per live secret) and retried with
exponential backoff and jitter for a day. Pure: the caller brings the clock and the
randomness.

(``webhook_signature`` is the other direction: what providers post *to* us.)
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

SIGNATURE_HEADER = "Parcours-Signature"
ID_HEADER = "Parcours-Webhook-Id"  # one per notification: the same on every retry
ATTEMPT_HEADER = "Parcours-Webhook-Attempt"
SCHEME = "v1"

_NOTIFICATION_NAMESPACE = uuid.UUID("5f0f6c1e-7a53-5e38-9d0b-776562686f6b")

FIRST_RETRY_S = 5.0
MAX_RETRY_S = 3600.0
RETRY_FOR_S = 24 * 3600.0


# --- signing ---------------------------------------------------------------------------

def signature(secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    """The header value: the timestamp, then one ``v1`` per secret (the new one first)."""
    signed = f"{timestamp}.".encode() + body
    parts = [f"t={timestamp}"]
    parts += [f"{SCHEME}={hmac.new(s.encode(), signed, hashlib.sha256).hexdigest()}"
              for s in secrets]
    return ",".join(parts)


def verify(secret: str, header: str, body: bytes, now: float, tolerance_s: float = 300.0
           ) -> bool:
    """What a receiver does (the README shows the same in a few lines): any ``v1`` that is
    the HMAC of ``"<t>.<body>"`` under its secret, and ``t`` within the tolerance."""
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                        hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, given) for given in fields.get(SCHEME, []))


# --- retries ---------------------------------------------------------------------------

def retry_delay(attempt: int, draw: float, *, first_s: float = FIRST_RETRY_S,
                cap_s: float = MAX_RETRY_S) -> float:
    """Seconds before the attempt after failed attempt number ``attempt`` (1-based):
    ``first_s`` doubled each time up to ``cap_s``, scaled by ``draw`` in [0, 1) into its
    upper half ("equal jitter"), so receivers coming back are not hit by every sender at
    once and a retry never comes much sooner than planned."""
    base = min(cap_s, first_s * 2.0 ** min(attempt - 1, 30))
    return base / 2 + base / 2 * draw


def next_attempt_at(failed_at: float, attempt: int, draw: float, give_up_at: float
                    ) -> float | None:
    """When to try again after failed attempt ``attempt``, or None: past ``give_up_at``
    (a day after the notification was made, or after a manual redelivery) it is given up;
    the log keeps it and it can be sent again by hand."""
    when = failed_at + retry_delay(attempt, draw)
    return when if when <= give_up_at else None


def succeeded(http_status: int | None) -> bool:
    """2xx only. A redirect is not followed (the subscription names the endpoint)."""
    return http_status is not None and 200 <= http_status < 300


# --- what a subscription wants ----------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    """None: any. An empty tuple of statuses or kinds: none of that type (a subscription
    to reactions alone says ``statuses=()``)."""

    event_ids: frozenset[str] | None = None
    channels: frozenset[str] | None = None
    statuses: frozenset[str] | None = None
    kinds: frozenset[str] | None = None

    @classmethod
    def of(cls, row: Mapping[str, object]) -> Filters:
        def opt(name: str) -> frozenset[str] | None:
            value = row.get(name)
            return None if value is None else frozenset(value)  # type: ignore[call-overload]
        return cls(opt("event_ids"), opt("channels"), opt("statuses"), opt("kinds"))


@dataclass(frozen=True)
class Change:
    """A status change or a reaction, as the filters see it. ``event_id`` is the event
    configuration's id (a journey's message has none)."""

    type: str  # "status" or "reaction"
    value: str  # the status or the reaction kind
    event_id: str | None
    channel: str | None

    @property
    def name(self) -> str:
        return f"{self.type}.{self.value}"


def matches(filters: Filters, change: Change) -> bool:
    wanted = filters.statuses if change.type == "status" else filters.kinds
    if wanted is not None and change.value not in wanted:
        return False
    if filters.event_ids is not None and change.event_id not in filters.event_ids:
        return False
    return filters.channels is None or change.channel in filters.channels


def notification_id(tenant: str, source: str) -> str:
    """One per (tenant, change) whatever the subscription: a receiver with two
    subscriptions sees the same id twice, and a retry carries the same id again.
    ``source``: "status/<pKey>/<status>" (a status is reached once per event),
    "reaction/<reaction id>"."""
    return str(uuid.uuid5(_NOTIFICATION_NAMESPACE, f"{tenant}/{source}"))


def delivery_id(subscription_id: str, notification: str) -> str:
    """One per (subscription, notification): a change read twice is delivered once."""
    return str(uuid.uuid5(_NOTIFICATION_NAMESPACE, f"{subscription_id}/{notification}"))


# --- where a call may go ---------------------------------------------------------------

def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an endpoint (syntax only; addresses are checked when calling,
    on what the name resolves to then), or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as error:
        return f"not a URL: {error}"
    if parts.scheme not in ("https", "http"):
        return "the URL must be https:// (http:// only where local targets are allowed)"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username or parts.password:
        return "credentials in the URL would be logged; put them in the path or a query"
    if parts.fragment:
        return "a URL fragment is never sent; leave it out"
    return None


def address_refused(address: str) -> bool:
    """Loopback, private, link-local (cloud metadata at 169.254.169.254), multicast,
    reserved or unspecified: never called unless local targets are allowed."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast
