"""What SMS providers post back, in a small provider-neutral contract (an adapter for a
given vendor maps its callbacks onto these, as ``provider_payloads`` does the other way):

    status   {"messageId": "<ours>", "providerId": "…", "to": "+1555…",
              "status": "delivered"|"failed"|"undelivered", "error": "…"}
    inbound  {"id": "<the provider's>", "from": "+1555…", "to": "<our sender id>",
              "text": "STOP"}

``messageId`` is the one we sent in the payload (providers echo a client reference).
A failure's error says whether the number is at fault: invalid or unknown numbers are a
hard failure of the address, an absent or full handset a soft one, anything else
(carrier filtering, our content) not the address's fault at all.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.delivery_rules.quarantine import FailureKind


class SmsStatus(BaseModel):
    model_config = ConfigDict(extra="ignore")  # providers add fields of their own

    messageId: uuid.UUID
    providerId: Annotated[str, Field(max_length=200)] | None = None
    to: Annotated[str, Field(max_length=64)] | None = None
    status: Literal["delivered", "failed", "undelivered"]
    error: Annotated[str, Field(max_length=500)] | None = None


class InboundSms(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: Annotated[str, Field(min_length=1, max_length=200)]
    sender: Annotated[str, Field(alias="from", min_length=1, max_length=64)]
    to: Annotated[str, Field(max_length=64)] | None = None
    text: Annotated[str, Field(max_length=1600)]


_HARD = re.compile(r"invalid|unknown (subscriber|number|destination)|not (a )?mobile|"
                   r"unallocated|not in service|does not exist|landline|blacklisted number",
                   re.IGNORECASE)
_SOFT = re.compile(r"absent|unreachable|switched off|memory (capacity )?exceeded|"
                   r"handset full|temporar|roaming|busy", re.IGNORECASE)


def address_failure(error: str | None) -> FailureKind | None:
    """What a failed receipt's error says about the number, for quarantine."""
    if not error:
        return None
    if _HARD.search(error):
        return "hard"
    if _SOFT.search(error):
        return "soft"
    return None


_INBOUND = uuid.UUID("d2f9c1e4-3b7a-5c8e-9f10-696e626f756e")


def inbound_message_id(tenant: str, provider: str, inbound_id: str) -> str:
    """An id for an inbound message that answers no message of ours: the same provider
    message (a retried webhook) is the same id."""
    return str(uuid.uuid5(_INBOUND, f"{tenant}/{provider}/{inbound_id}"))
