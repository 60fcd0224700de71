"""The console's only back end is the admin HTTP API: no module of it reaches PostgreSQL
or Kafka, so every rule of the API holds in the console too. And every script and style
it serves is its own: no CDN."""

import ast
import re
from pathlib import Path

CONSOLE = Path(__file__).resolve().parents[2] / "services" / "console"
FORBIDDEN = ("asyncpg", "aiokafka", "faust", "shared.adapters")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_console_module_reaches_a_database_or_kafka():
    for path in CONSOLE.rglob("*.py"):
        bad = {name for name in imported_modules(path)
               if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)}
        assert not bad, f"{path.name} imports {sorted(bad)}: call the admin API instead"


def test_templates_load_scripts_and_styles_from_the_console_only():
    for path in (CONSOLE / "templates").glob("*.html"):
        text = path.read_text()
        for source in re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]+)"', text):
            assert source.startswith("/static/"), f"{path.name} loads {source}"
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), f"{path.name}: inline script"
        assert not re.search(r"\sstyle=", text), f"{path.name}: inline style (the CSP refuses)"
        assert not re.search(r"\son[a-z]+=", text), f"{path.name}: inline event handler"
