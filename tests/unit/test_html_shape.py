"""Finding links from a template's shape (html_shape) answers what a full parse answers."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain import html_shape
from shared.domain.events import Channel
from shared.domain.html_shape import Shapes, parse
from shared.domain.link_rewriting import rewrite_links
from shared.domain.rendering import RenderedMessage, compile_message, render_message

# Pieces of HTML and of template: every context a value can land in — text, quoted and
# unquoted attribute values, tag and attribute names, comments, script, after '<' and '&'.
_PIECES = [
    '<a href="', "<a href=", "<a href='", '<area href="', "<A HREF=\"", '">', "'>", ">",
    "/>", "</a>", " ", "\n", "http://s.example/", "https://s.example/p?a=1&amp;b=2",
    "mailto:x@example.com", "<!--", "-->", "<script>", "</script>", "</scr", "ipt>",
    "<p>", "</p>", "</body>", "<body>", "<b", ' title="', '"', "'", "=", "/", "<", "&",
    "&#", "x", "<!DOCTYPE html>", "<?php ?>", "<![CDATA[", "]]>", "</", "<img src=\"",
    "{{ v }}", "{{ w }}", "{{ s|safe }}", "{{ v }}{{ w }}",
    ' href="', " href='", " href=", "a", "area", "--", "!", "<{{ v }}", "</{{ v }}",
    "{{ v }} href=", "<a href={{ v }}>", "<!--{{ v }}-->", "{{ v }}{{ v }}{{ v }}",
]
_VALUES = ["", "x", "a b", "=", "/", "http://v.example/", "https://v.example/?q=1&r=2",
           "mailto:v@example.com", " href=", "<b>", '"', "'", ">", "&amp;", "&#", "--", "-->",
           "script", "a", "body", "é ü", "\n", "area", "a href=https://v.example/", "href",
           "!--", "a title=", "/a", " ", "\t"]
_SAFE = ["", "<b>bold</b>", '<a href="https://safe.example/">s</a>', "plain", "</body>",
         "-->", "<!--"]


@st.composite
def _templates(draw: Any) -> str:
    pieces = draw(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=24))
    if len(pieces) > 2 and draw(st.booleans()):  # a loop, or a condition, round a slice
        first = draw(st.integers(0, len(pieces) - 1))
        last = draw(st.integers(first + 1, len(pieces)))
        opening, closing = draw(st.sampled_from([
            ("{% for i in range(n) %}", "{% endfor %}"), ("{% if c %}", "{% endif %}")]))
        pieces = [*pieces[:first], opening, *pieces[first:last], closing, *pieces[last:]]
    return "".join(pieces)


def _render(template: str, values: dict[str, Any]) -> RenderedMessage:
    compiled = compile_message(Channel.EMAIL, {"subject": "s", "html": template, "text": "t"})
    return render_message(compiled, values, time_limit=10)  # a GC pause is no timeout here


_VALUE_SETS = st.fixed_dictionaries({
    "v": st.sampled_from(_VALUES), "w": st.sampled_from(_VALUES),
    "s": st.sampled_from(_SAFE), "n": st.integers(0, 3), "c": st.booleans()})


@settings(max_examples=3000, deadline=None)
@given(_templates(), st.lists(_VALUE_SETS, min_size=1, max_size=4))
def test_the_shape_finds_what_a_full_parse_finds(template: str,
                                                  value_sets: list[dict[str, Any]]) -> None:
    shapes = Shapes()
    for values in value_sets:  # the first plans the shape, the others reuse the plan
        rendered = _render(template, values)
        assert rendered.html is not None and rendered.html.text is rendered.parts["html"]
        text = rendered.html.text
        assert shapes.locate(text, rendered.html.chunks) == parse(text), (template, values)


def _rewritten(rendered: RenderedMessage, with_chunks: bool) -> tuple[str, tuple[str, ...]]:
    done = rewrite_links(rendered.parts["html"], lambda i: f"https://t.example/c/{i}",
                         "https://t.example/o.gif", rendered.html if with_chunks else None)
    return done.html, done.links


def test_recipients_of_one_shape_share_one_plan_and_get_their_own_links() -> None:
    shapes = Shapes()
    template = ('<html><body><p>Hello {{ v }}</p><a href="https://shop.example/o/{{ w }}"'
                ' class="b">Order</a> <a href="https://shop.example/help">Help</a></body></html>')
    first = _render(template, {"v": "Ann", "w": "A-1"})
    second = _render(template, {"v": "Bartholomew & Co", "w": "B-22/7"})
    for rendered in (first, second):
        assert rendered.html is not None
        found = shapes.locate(rendered.html.text, rendered.html.chunks)
        assert found == parse(rendered.html.text)
    assert (shapes.hits, shapes.misses) == (1, 1)
    assert _rewritten(second, True) == _rewritten(second, False)
    assert _rewritten(second, True)[1] == ("https://shop.example/o/B-22/7",
                                           "https://shop.example/help")


def test_a_value_where_it_could_change_the_parse_makes_the_shape_unsafe() -> None:
    for template in ("<a href={{ v }}>x</a>",  # an unquoted value
                     "<{{ v }} href='https://a.example/'>x</a>",  # a tag name
                     "<a {{ v }}='https://a.example/'>x</a>",  # an attribute name
                     "<!-- {{ v }} --><a href='https://a.example/'>x</a>",  # a comment
                     "<script>if (a<b) {{ v }}</script><a href='https://a.example/'>x</a>",
                     "</scr{{ v }}>"):
        rendered = _render(template, {"v": "a"})
        assert rendered.html is not None
        assert html_shape._plan(tuple(c if type(c) is str else None
                                      for c in rendered.html.chunks)) is None, template
        for value in ("a", "a href=https://b.example/", "script"):
            again = _render(template, {"v": value})
            assert again.html is not None
            assert Shapes().locate(again.html.text, again.html.chunks) == parse(again.html.text)


def test_values_marked_safe_with_markup_are_parsed_in_full() -> None:
    template = '<p>{{ s|safe }}</p><a href="https://a.example/">a</a>'
    rendered = _render(template, {"s": '<a href="https://inner.example/">i</a>'})
    assert rendered.html is not None
    shapes = Shapes()
    found = shapes.locate(rendered.html.text, rendered.html.chunks)
    assert [link.attrs for link in found.links] == [[("href", "https://inner.example/")],
                                                   [("href", "https://a.example/")]]
    assert shapes.hits + shapes.misses == 0  # not even planned


def test_an_autoescape_block_turns_the_shapes_off() -> None:
    """Inside ``{% autoescape false %}`` a value comes out as plain str, like the
    template's own text: such a template is always parsed in full."""
    rendered = _render("{% autoescape false %}<a href='{{ v }}'>x</a>{% endautoescape %}",
                       {"v": "https://a.example/"})
    assert rendered.html is None
    assert _rewritten(rendered, True)[1] == ("https://a.example/",)


def test_a_changed_html_is_not_located_from_the_old_chunks() -> None:
    rendered = _render('<a href="https://a.example/{{ v }}">x</a>', {"v": "1"})
    assert rendered.html is not None
    changed = RenderedMessage(rendered.channel, {**rendered.parts, "html": "<p>new</p>"
                                                 + rendered.parts["html"]}, rendered.data,
                              rendered.html)
    done = rewrite_links(changed.parts["html"], lambda i: f"C{i}", "O", changed.html)
    assert done.html.startswith('<p>new</p><a href="C0">')


def test_the_shapes_are_bounded_in_count_and_characters() -> None:
    shapes = Shapes(max_shapes=3, max_chars=400)
    for n in range(10):
        rendered = _render("{% for i in range(n) %}<p>{{ v }}</p>{% endfor %}",
                           {"n": n, "v": "x"})
        assert rendered.html is not None
        shapes.locate(rendered.html.text, rendered.html.chunks)
    assert len(shapes._plans) <= 3 and shapes._chars <= 400


def test_a_malformed_character_reference_no_longer_hides_the_links_after_it() -> None:
    """``&#x`` not followed by hex digits stopped the old parse (character references
    read one by one): every link after it went out untracked."""
    done = rewrite_links("a &#x b <a href='https://a.example/'>l</a>", lambda i: f"C{i}", "O")
    assert done.links == ("https://a.example/",)
