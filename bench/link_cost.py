"""Link rewriting's cost per message, apart from P6: finding an HTML email's links by a
full parse of every rendering (as before html_shape) against finding them from the
template's shape, signing and rewriting included, in the same run.
``python -m bench.link_cost [messages]``.

Two mails, each rendered for recipients whose values differ (so no rendering repeats):
P6's order mail (9 start tags, 3 links) and a newsletter shaped like a marketer's (nested
tables, 40 product blocks with an image, a name, a price and two links each: 452 start
tags, 81 links, 23 kB). CPU µs of this process alone, the best of RUNS runs.
"""

from __future__ import annotations

import itertools
import sys
import uuid

from bench.stats import cpu_us_per_call
from shared.domain.events import Channel
from shared.domain.link_rewriting import rewrite_links
from shared.domain.rendering import RenderedMessage, compile_message, render_message
from shared.domain.tracking_links import click_urls, open_url, parse_keyring

RUNS = 7
_PRODUCT = (
    '<tr><td class="product" style="padding:12px 0;border-bottom:1px solid #eee">'
    '<table role="presentation" width="100%"><tr>'
    '<td width="120"><a href="https://shop.example.com/p/{{ p.sku }}?utm_source=news">'
    '<img src="https://cdn.example.com/{{ p.sku }}.jpg" width="120" alt="{{ p.name }}"></a></td>'
    '<td style="padding-left:12px"><p style="margin:0;font:16px Arial">{{ p.name }}</p>'
    '<p style="margin:4px 0;color:#c00">{{ p.price }} EUR</p>'
    '<a href="https://shop.example.com/cart/add/{{ p.sku }}" style="color:#fff;'
    'background:#c00;padding:6px 12px">Add to cart</a></td></tr></table></td></tr>')
NEWSLETTER = {
    "subject": "Our autumn collection, {{ ctx.firstName }}",
    "html": ('<!DOCTYPE html><html><head><style>td{font-family:Arial}</style></head><body>'
             '<table role="presentation" width="600" align="center"><tr><td>'
             '<h1>Autumn is here, {{ ctx.firstName }}</h1></td></tr>'
             "{% for p in ctx.products %}" + _PRODUCT + "{% endfor %}"
             '<tr><td><a href="https://shop.example.com/account">Your account</a></td></tr>'
             "</table></body></html>"),
    "text": "Autumn is here, {{ ctx.firstName }}",
}


def _contexts(template: dict[str, str]) -> list[dict[str, object]]:
    """Recipients: every value their own."""
    contexts = []
    for n in range(50):
        ctx: dict[str, object] = {"firstName": f"Reader {n}", "orderId": f"A-{n:05d}",
                                  "amount": f"{n}.50"}
        if template is NEWSLETTER:
            ctx["products"] = [{"sku": f"S{n}-{k}", "name": f"Wool coat {k} for {n}",
                                "price": f"{k}9.90"} for k in range(40)]
        contexts.append({"ctx": ctx, "profile": {}, "event": {}})
    return contexts


def run(messages: int) -> list[tuple[str, int, int, float, float]]:
    """(mail, tags, characters, full parse µs, from the shape µs) per mail."""
    from bench.p6_sender import P6_TEMPLATE  # here: P6 imports this module to report it

    keys = parse_keyring("k1:bench-link-cost-secret")
    message = str(uuid.uuid4())

    def rewrite(rendered: RenderedMessage, shaped: bool) -> object:
        return rewrite_links(
            rendered.parts["html"],
            click_urls("https://t.example.com", keys, "default", message),
            open_url("https://t.example.com", keys, "default", message),
            rendered.html if shaped else None)

    rows = []
    for label, template in (("order mail (P6)", P6_TEMPLATE), ("newsletter", NEWSLETTER)):
        compiled = compile_message(Channel.EMAIL, template)
        renderings = [render_message(compiled, c) for c in _contexts(template)]
        html = renderings[0].parts["html"]
        each = itertools.cycle(renderings).__next__  # a recipient of their own each time
        full = cpu_us_per_call(lambda each=each: rewrite(each(), False), messages, RUNS)
        shaped = cpu_us_per_call(lambda each=each: rewrite(each(), True), messages, RUNS)
        rows.append((label, html.count("<") - html.count("</"), len(html), full, shaped))
    return rows


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    print(f"Link rewriting per message: CPU µs, best of {RUNS} runs of {messages} messages")
    print(f"{'mail':<16} {'tags':>5} {'chars':>7} {'full parse µs':>14} {'shape µs':>9} "
          f"{'saved':>6}")
    for label, tags, size, full, shaped in run(messages):
        print(f"{label:<16} {tags:>5} {size:>7} {full:>14.0f} {shaped:>9.0f} "
              f"{1 - shaped / full:>6.0%}")


if __name__ == "__main__":
    main()
