"""The message a newly published event starts with: every field shown, ready to edit."""

from __future__ import annotations

from typing import Any

from shared.domain.events import Channel, EventConfig


def _lines(config: EventConfig) -> list[str]:
    # ctx['id'], not ctx.id: a field named like a dict method (items, keys) would
    # otherwise resolve to the method.
    lines = [f"{f.label or f.id}: {{{{ ctx['{f.id}'] }}}}" for f in config.fields]
    for collection in config.collections:
        items = ", ".join(f"{{{{ item['{f.id}'] }}}}" for f in collection.fields)
        lines.append(f"{{% for item in ctx['{collection.id}'] %}}- {items}\n{{% endfor %}}")
    return lines


def default_template(config: EventConfig) -> dict[str, Any]:
    lines = _lines(config)
    if config.channel is Channel.EMAIL:
        html = "".join(f"<p>{line}</p>" for line in lines)
        return {"subject": config.label, "html": html, "text": "\n".join(lines)}
    if config.channel is Channel.SMS:
        return {"text": " ".join([config.label, *lines])}
    return {"title": config.label, "body": " ".join(lines), "data": {}}
