"""Is an open or a click a person's, or a machine's (a mail-privacy proxy fetching images
for the recipient, a security gateway scanning links)? Machines are recorded all the same,
flagged, so a journey can choose to ignore them.

Only documented, observable signals: the request's method, its User-Agent, how soon after
sending it came. What none of them catches: Apple Mail Privacy Protection beyond its bare
``Mozilla/5.0`` user agent (its egress IP list is not shipped here), scanners that present
a browser's user agent and wait, and proxies that pass the user's own user agent through.
"""

from __future__ import annotations

from dataclasses import dataclass

# (substring of the lower-cased User-Agent, why it is a machine), first match wins.
USER_AGENT_SIGNALS: tuple[tuple[str, str], ...] = (
    ("googleimageproxy", "Gmail image proxy (GoogleImageProxy)"),
    ("yahoomailproxy", "Yahoo/AOL mail image proxy (YahooMailProxy)"),
    ("barracuda", "link scanner (Barracuda)"),
    ("mimecast", "link scanner (Mimecast)"),
    ("proofpoint", "link scanner (Proofpoint)"),
    ("ppops-", "link scanner (Proofpoint)"),
    ("safelinks", "link scanner (Microsoft Defender Safe Links)"),
    ("safe links", "link scanner (Microsoft Defender Safe Links)"),
    ("bingpreview", "link preview (BingPreview)"),
    ("messagelabs", "link scanner (Symantec MessageLabs)"),
    ("forcepoint", "link scanner (Forcepoint)"),
    ("trend micro", "link scanner (Trend Micro)"),
    ("headlesschrome", "automated browser (HeadlessChrome)"),
    ("python-requests", "HTTP library (python-requests)"),
    ("python-httpx", "HTTP library (python-httpx)"),
    ("curl/", "HTTP tool (curl)"),
    ("wget/", "HTTP tool (wget)"),
    ("go-http-client", "HTTP library (Go)"),
    ("bot/", "a bot's user agent"),  # Googlebot/2.1; not "CUBOT X30", a phone
    ("spider", "a crawler's user agent"),
    ("crawler", "a crawler's user agent"),
)
# Apple Mail Privacy Protection prefetches images with exactly this, nothing after it.
BARE_MOZILLA = "mozilla/5.0"
# Nobody opens or clicks a message within this long of its hand-over; scanners do.
SCANNER_WINDOW_S = 2.0


@dataclass(frozen=True)
class Verdict:
    machine: bool
    reason: str | None = None


HUMAN = Verdict(False)


def classify(method: str, user_agent: str | None, seconds_since_sent: float | None,
             window_s: float = SCANNER_WINDOW_S) -> Verdict:
    """A machine's request (with why), or a person's as far as the signals tell."""
    if method.upper() == "HEAD":
        return Verdict(True, "HEAD request (a link checker)")
    agent = (user_agent or "").strip().lower()
    if not agent:
        return Verdict(True, "no User-Agent")
    if agent == BARE_MOZILLA:
        return Verdict(True, "bare Mozilla/5.0 User-Agent (Apple Mail Privacy Protection)")
    for signal, reason in USER_AGENT_SIGNALS:
        if signal in agent:
            return Verdict(True, reason)
    if seconds_since_sent is not None and seconds_since_sent < window_s:
        return Verdict(True, f"within {window_s:g} s of sending (a link scanner)")
    return HUMAN
