"""The house rules of the layout: a service imports only ``shared`` and itself, so each
deploys on its own; ``shared`` never imports a service; the domain does no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_a_service_imports_only_shared_and_itself() -> None:
    crossing = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / "services").glob("*/*.py")
        for name in _imports(path)
        if name.startswith("services.") and name.split(".")[1] != path.parent.name
    ]
    assert not crossing


def test_shared_never_imports_a_service() -> None:
    crossing = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / "shared").rglob("*.py")
        for name in _imports(path)
        if name == "services" or name.startswith("services.")
    ]
    assert not crossing


def test_the_domain_does_no_io() -> None:
    io_modules = ("asyncio", "asyncpg", "aiokafka", "faust", "httpx", "aiosmtplib",
                  "socket", "fastapi", "shared.adapters", "shared.sending")
    found = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / "shared/domain").rglob("*.py")
        for name in _imports(path)
        if any(name == m or name.startswith(m + ".") for m in io_modules)
    ]
    assert not found
