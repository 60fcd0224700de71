"""The console's colours meet WCAG 2.x contrast: 4.5:1 for text (AA), 3:1 for the focus
ring and borders that carry meaning. Read from console.css's custom properties, so a
change of palette is checked here."""

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).resolve().parents[2] / "services" / "console" / "static"
       / "console.css").read_text()
PALETTE = dict(re.findall(r"--([a-z]+):\s*(#[0-9a-fA-F]{6})", CSS))


def luminance(colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(one: str, two: str) -> float:
    high, low = sorted((luminance(one), luminance(two)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def colour(name: str) -> str:
    return PALETTE.get(name, name)


@pytest.mark.parametrize(("text", "background"), [
    ("ink", "paper"), ("ink", "soft"), ("muted", "paper"), ("muted", "soft"),
    ("accent", "paper"), ("accent", "soft"), ("#ffffff", "accent"), ("bad", "paper"),
    ("#ffffff", "bad"), ("ok", "paper"), ("warn", "paper"), ("bad", "#fdecee"),
    ("ink", "#dafbe1"), ("ink", "#fff8c5"), ("ink", "#ffe9c5"), ("ink", "#ffebe9"),
])
def test_text_is_readable(text: str, background: str) -> None:
    assert contrast(colour(text), colour(background)) >= 4.5, (text, background)


def test_the_focus_ring_stands_out_from_the_page() -> None:
    ring = re.search(r":focus-visible\s*{\s*outline:\s*3px solid (#[0-9a-fA-F]{6})", CSS)
    assert ring, "the focus style changed: check it here"
    # drawn 2 px outside the control, on the page: it must stand out from the page
    assert contrast(ring.group(1), colour("paper")) >= 3
    assert contrast(ring.group(1), colour("soft")) >= 3
