"""Machine opens and clicks: each signal of the table, and what stays a person's."""

from __future__ import annotations

import pytest

from shared.domain.machine_signals import HUMAN, classify

BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.1 Safari/605.1.15")


@pytest.mark.parametrize(("agent", "reason"), [
    ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com "
     "GoogleImageProxy)", "Gmail image proxy"),
    ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", "Yahoo/AOL"),
    ("Mozilla/5.0", "Apple Mail Privacy Protection"),
    ("Barracuda Sentinel (EE)", "Barracuda"),
    ("Mozilla/5.0 Mimecast-Scanner", "Mimecast"),
    ("Proofpoint URL Defense", "Proofpoint"),
    ("ppops-url-checker", "Proofpoint"),
    ("Mozilla/5.0 (compatible; BingPreview/1.0b)", "BingPreview"),
    ("Mozilla/5.0 HeadlessChrome/120.0", "HeadlessChrome"),
    ("curl/8.5.0", "curl"),
    ("python-requests/2.31", "python-requests"),
    ("Googlebot/2.1", "bot"),
    ("", "no User-Agent"),
    (None, "no User-Agent"),
])
def test_user_agent_signals(agent: str | None, reason: str) -> None:
    verdict = classify("GET", agent, 3600)
    assert verdict.machine and reason in (verdict.reason or "")


def test_a_head_request_is_a_link_checker() -> None:
    assert classify("HEAD", BROWSER, 3600).reason == "HEAD request (a link checker)"


def test_within_the_window_after_sending_is_a_scanner() -> None:
    verdict = classify("GET", BROWSER, 0.8)
    assert verdict.machine and "within 2 s" in (verdict.reason or "")
    assert classify("GET", BROWSER, 2.5) == HUMAN
    assert classify("GET", BROWSER, 5, window_s=10).machine


def test_a_browser_later_is_a_person_even_unknown_send_time() -> None:
    assert classify("GET", BROWSER, 3600) == HUMAN
    assert classify("GET", BROWSER, None) == HUMAN
    # a browser's full user agent begins with Mozilla/5.0: only the bare one is Apple's proxy
    assert classify("GET", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)", None) == HUMAN
    assert classify("GET", "Mozilla/5.0 (Linux; Android 10; CUBOT X30)", None) == HUMAN
