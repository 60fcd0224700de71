"""Control rules on rendered messages: each check passes a good message and names what is
wrong with a bad one."""

from __future__ import annotations

from typing import Any

import pytest

from shared.domain.delivery_rules.control import control_failures, links
from shared.domain.delivery_rules.model import ControlRule
from shared.domain.events import Channel
from shared.domain.rendering import RenderedMessage

ALL = ControlRule(name="all", checks=("subjectPresent", "noUnrenderedTags", "maxBytes",
                                      "absoluteLinks", "httpsLinks"), maxBytes=40_000)
GOOD_HTML = ('<p>Hello <a href="https://shop.example/o/1?a=1&amp;b=2">your order</a>'
             '<img src="https://cdn.example/logo.png"/> <a href="mailto:help@shop.example">'
             'help</a> <a href="#top">top</a> <img src="cid:logo"></p>')


def email(**parts: str) -> RenderedMessage:
    base = {"subject": "Your order", "html": GOOD_HTML, "text": "See https://shop.example/o/1"}
    return RenderedMessage(Channel.EMAIL, {**base, **parts}, {})


def reasons(message: RenderedMessage, rule: ControlRule = ALL, **options: Any) -> list[str]:
    return [f"{f.check}: {f.reason}" for f in control_failures(message, rule, **options)]


def test_a_good_email_passes_every_check() -> None:
    assert reasons(email()) == []


@pytest.mark.parametrize("subject", ["", "   \n"])
def test_a_blank_subject_fails(subject: str) -> None:
    assert reasons(email(subject=subject)) == ["subjectPresent: the subject is empty"]


def test_push_title_and_sms_text_stand_for_the_subject() -> None:
    push = RenderedMessage(Channel.PUSH, {"title": " ", "body": "b"}, {})
    sms = RenderedMessage(Channel.SMS, {"text": ""}, {})
    assert reasons(push) == ["subjectPresent: the title is empty"]
    assert reasons(sms) == ["subjectPresent: the text is empty"]


@pytest.mark.parametrize(("parts", "expected"), [
    ({"html": "<p>Hi {{ profile.name }</p>"}, "'{{' in the HTML body"),
    ({"subject": "Hi {% if x %}"}, "'{%' in the subject"),
    ({"text": "total: }}"}, "'}}' in the text body"),
])
def test_unrendered_tags_are_found_in_any_part(parts: dict[str, str], expected: str) -> None:
    assert reasons(email(**parts)) == [f"noUnrenderedTags: unrendered template tag {expected}"]


def test_unrendered_tags_in_push_data() -> None:
    push = RenderedMessage(Channel.PUSH, {"title": "t", "body": "b"}, {"screen": "{{ x"})
    assert reasons(push) == ["noUnrenderedTags: unrendered template tag '{{' in data 'screen'"]


def test_size_counts_utf8_bytes_of_every_part() -> None:
    rule = ControlRule(name="size", checks=("maxBytes",), maxBytes=40_000)
    big = email(subject="", html="<p>" + "é" * 21_000 + "</p>", text="")
    assert reasons(big, rule) == ["maxBytes: 42,007 bytes, over the 40,000 allowed"]
    exact = email(subject="", html="a" * 40_000, text="")
    assert reasons(exact, rule) == []


@pytest.mark.parametrize("link", ["foo/bar", "/orders/1", "//cdn.example/x.png", "", "https:/x",
                                  "www.shop.example"])
def test_relative_links_fail(link: str) -> None:
    message = email(html=f'<a href="{link}">x</a>')
    assert reasons(message) == [f"absoluteLinks: link '{link}' is not absolute"]


def test_links_are_read_from_attributes_not_text_and_entities_decoded() -> None:
    html = ('<p>write href="relative" in text</p><!-- <a href="commented"> -->'
            '<a title="x" HREF="https://a.example/?q=1&amp;r=2">a</a><img src=\'rel.png\'>')
    message = email(html=html, text="")
    assert links(message) == ["https://a.example/?q=1&r=2", "rel.png"]
    assert reasons(message) == ["absoluteLinks: link 'rel.png' is not absolute"]


def test_several_offenders_are_counted() -> None:
    message = email(html='<a href="a">1</a><a href="b">2</a><img src="c">')
    assert reasons(message) == ["absoluteLinks: link 'a' is not absolute (and 2 more)"]


def test_http_links_fail_in_html_and_in_text_unless_allowed() -> None:
    message = email(html='<a href="http://shop.example/o">o</a>',
                    text="or http://shop.example/t")
    assert reasons(message) == [
        "httpsLinks: link 'http://shop.example/o' is not https (and 1 more)"]
    assert reasons(message, allow_http=True) == []
    sms = RenderedMessage(Channel.SMS, {"text": "Track: HTTP://t.example/1."}, {})
    assert reasons(sms) == ["httpsLinks: link 'HTTP://t.example/1.' is not https"]


def test_failures_follow_the_rules_order_and_only_its_checks() -> None:
    rule = ControlRule(name="r", checks=("httpsLinks", "subjectPresent"))
    message = email(subject="", html='<a href="http://x.example">x</a><a href="rel">r</a>')
    assert reasons(message, rule) == ["httpsLinks: link 'http://x.example' is not https",
                                      "subjectPresent: the subject is empty"]


def test_a_long_link_is_shortened_in_the_reason() -> None:
    link = "relative/" + "x" * 200
    [failure] = control_failures(email(html=f'<a href="{link}">x</a>'), ALL)
    assert len(failure.reason) < 120 and failure.reason.startswith("link 'relative/xxx")
