"""Link rewriting at send time: only http(s) links in tags, everything else byte for byte."""

from __future__ import annotations

from shared.domain.link_rewriting import pixel, rewrite_links

PIXEL = "https://t.example/o/tok.gif"


def rewrite(html: str) -> tuple[str, tuple[str, ...]]:
    result = rewrite_links(html, lambda i: f"https://t.example/c/{i}", PIXEL)
    return result.html, result.links


def test_links_in_order_and_the_pixel_before_body_end() -> None:
    html, links = rewrite('<html><body><a href="https://a.example/x">A</a>'
                          '<a href="http://b.example">B</a></body></html>')
    assert html == ('<html><body><a href="https://t.example/c/0">A</a>'
                    f'<a href="https://t.example/c/1">B</a>{pixel(PIXEL)}</body></html>')
    assert links == ("https://a.example/x", "http://b.example")


def test_no_body_the_pixel_goes_at_the_end() -> None:
    html, links = rewrite("<p>hello</p>")
    assert html == "<p>hello</p>" + pixel(PIXEL) and links == ()


def test_other_schemes_anchors_and_relative_links_stay() -> None:
    source = ('<a href="mailto:a@b.example">m</a><a href="tel:+33123">t</a>'
              '<a href="#top">#</a><a href="/relative">r</a><a name="x">n</a>'
              '<a href="javascript:alert(1)">j</a>')
    html, links = rewrite(source)
    assert html == source + pixel(PIXEL) and links == ()


def test_entities_decoded_in_the_stored_url_and_kept_in_text() -> None:
    html, links = rewrite('<p>A &amp; B &eacute; &#233;</p>'
                          '<a href="https://s.example/?a=1&amp;b=2">x &lt; y</a>')
    assert links == ("https://s.example/?a=1&b=2",)
    assert html.startswith('<p>A &amp; B &eacute; &#233;</p><a href="https://t.example/c/0">'
                           'x &lt; y</a>')


def test_attributes_keep_their_order_and_are_escaped() -> None:
    html, _ = rewrite('<a class="btn" href="https://x.example" title="&quot;go&quot; now"'
                      ' target=_blank data-x>go</a>')
    assert html.startswith('<a class="btn" href="https://t.example/c/0" '
                           'title="&quot;go&quot; now" target="_blank" data-x>go</a>')


def test_links_in_comments_scripts_and_styles_are_untouched() -> None:
    source = ('<!-- <a href="https://hidden.example">x</a> -->'
              '<script>var a = \'<a href="https://s.example">\';</script>'
              '<style>a[href="https://c.example"] {}</style>')
    html, links = rewrite(source)
    assert html == source + pixel(PIXEL) and links == ()


def test_upper_case_tags_schemes_and_spaces_and_area() -> None:
    html, links = rewrite('<A HREF=" HTTPS://X.example/P ">x</A>\n'
                          '<map><area shape="rect" href="https://m.example"/></map>')
    assert links == ("HTTPS://X.example/P", "https://m.example")
    assert html.startswith('<a href="https://t.example/c/0">x</A>\n'
                           '<map><area shape="rect" href="https://t.example/c/1" /></map>')


def test_positions_across_lines_and_multibyte_text() -> None:
    source = 'é\n<p>ü</p>\n  <a href="https://a.example">1</a>\n<a\n href="https://b.example">2</a>'
    html, links = rewrite(source)
    assert links == ("https://a.example", "https://b.example")
    assert html == ('é\n<p>ü</p>\n  <a href="https://t.example/c/0">1</a>\n'
                    '<a href="https://t.example/c/1">2</a>' + pixel(PIXEL))


def test_the_same_url_twice_is_two_links() -> None:
    _, links = rewrite('<a href="https://a.example">1</a><a href="https://a.example">2</a>')
    assert links == ("https://a.example", "https://a.example")
