"""What an inbound SMS asks for: the keywords carriers require us to honour (CTIA, and the
French ``STOP`` rule), matched on the whole message, case- and space-insensitive, accents
ignored. Anything else is an ordinary reply, left alone."""

from __future__ import annotations

import unicodedata
from enum import StrEnum


class Keyword(StrEnum):
    STOP = "stop"
    HELP = "help"
    START = "start"


_KEYWORDS = {
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ARRET",
                     "OPTOUT", "REVOKE"), Keyword.STOP),
    **dict.fromkeys(("HELP", "INFO", "AIDE"), Keyword.HELP),
    **dict.fromkeys(("START", "UNSTOP"), Keyword.START),
}


def _folded(text: str) -> str:
    """Upper case, accents dropped (ARRÊT → ARRET), spaces, dashes and final punctuation
    gone ("Stop." "s t o p" "opt-out")."""
    decomposed = unicodedata.normalize("NFKD", text)
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    return "".join(c for c in letters.upper() if c.isalnum())


def keyword(text: str) -> Keyword | None:
    return _KEYWORDS.get(_folded(text))
