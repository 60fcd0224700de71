"""Who a tenant's email comes from: the From address and display name, an optional
Reply-To, and the domain its bounces return to (the envelope sender is a VERP return path
there, shared/domain/verp.py). DKIM signs with the active key of the From address's domain.
"""

from __future__ import annotations

import re
from email.utils import formataddr, parseaddr

from pydantic import BaseModel, ConfigDict, Field, field_validator

# A domain as DNS and SMTP take it: letters, digits and hyphens (punycode for the rest),
# at least two labels, each at most 63 characters.
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})+")
# A local part SMTP carries without quoting (RFC 5321 dot-string).
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_SELECTOR = re.compile(rf"{_LABEL}(\.{_LABEL})*")

# What DKIM signs (when present): the headers a receiver shows or that change what the
# message means. From is signed twice by dkimpy (oversigned) so none can be added.
SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
                  b"content-type", b"reply-to", b"list-unsubscribe", b"list-unsubscribe-post")


def domain(value: str) -> str:
    """A domain folded to lower case; ValueError if it is not one."""
    folded = value.strip().rstrip(".").lower()
    if len(folded) > 253 or not _DOMAIN.fullmatch(folded):
        raise ValueError("not a domain name (letters, digits, hyphens; e.g. mail.example.com)")
    return folded


def address(value: str) -> str:
    """An address as SMTP carries it, its domain folded; ValueError if it is not one."""
    local, at, rest = value.strip().rpartition("@")
    if not at or len(local) > 64 or not _LOCAL.fullmatch(local):
        raise ValueError("not an email address (local@domain, ASCII)")
    return f"{local}@{domain(rest)}"


def selector(value: str) -> str:
    folded = value.strip().lower()
    if len(folded) > 63 or not _SELECTOR.fullmatch(folded):
        raise ValueError("not a DKIM selector (letters, digits, hyphens, dots)")
    return folded


def domain_of(email: str) -> str:
    return email.rpartition("@")[2].lower()


class SenderIdentity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fromAddress: str = Field(description="the From address; DKIM signs for its domain")
    fromName: str = Field("", max_length=200, description="the From display name")
    replyTo: str | None = Field(None, description="where replies go, if not to fromAddress")
    bounceDomain: str = Field(description="the domain of the VERP return path (envelope "
                                          "sender): b+<message id>.<signature>@bounceDomain")

    @field_validator("fromAddress", "replyTo")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else address(value)

    @field_validator("bounceDomain")
    @classmethod
    def _domain(cls, value: str) -> str:
        return domain(value)

    @field_validator("fromName")
    @classmethod
    def _name(cls, value: str) -> str:
        if any(c in value for c in "\r\n\0"):
            raise ValueError("a display name is one line")
        return value.strip()

    @property
    def header_from(self) -> str:
        return formataddr((self.fromName, self.fromAddress))


def default_identity(mail_from: str, bounce_domain: str) -> SenderIdentity:
    """A tenant that set none sends as the settings say (``mail_from``, ``bounce_domain``)."""
    name, email = parseaddr(mail_from)
    return SenderIdentity(fromAddress=email, fromName=name, bounceDomain=bounce_domain)
