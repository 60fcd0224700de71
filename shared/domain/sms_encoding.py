"""How an SMS text travels: GSM-7 (GSM 03.38 basic table, the extension table's
characters costing two septets) when every character is in it, else UCS-2 (UTF-16: a
character outside the BMP, an emoji, costs two units). One segment holds 160 septets or
70 UCS-2 units; a longer text is split in segments of 153 or 67 (the rest is the
concatenation header), and an escape pair or a surrogate pair is never split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_EXTENSION = set("\f^{}\\[~]|€")

Encoding = Literal["gsm7", "ucs2"]


@dataclass(frozen=True)
class SmsShape:
    encoding: Encoding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def _units(text: str) -> tuple[Encoding, list[int]]:
    """The encoding, and each character's cost in it."""
    if all(c in _BASIC or c in _EXTENSION for c in text):
        return "gsm7", [2 if c in _EXTENSION else 1 for c in text]
    return "ucs2", [2 if ord(c) > 0xFFFF else 1 for c in text]


def sms_shape(text: str) -> SmsShape:
    encoding, costs = _units(text)
    single, part = (160, 153) if encoding == "gsm7" else (70, 67)
    total = sum(costs)
    if total <= single:
        return SmsShape(encoding, total, 1 if total else 0)
    segments, used = 1, 0
    for cost in costs:  # a character never straddles two segments
        if used + cost > part:
            segments, used = segments + 1, 0
        used += cost
    return SmsShape(encoding, total, segments)
