"""Where each service log ended when the test session began, so the log scan
(tests/integration/test_zzz_scans.py) reads only what this session wrote: the local
stack appends to its logs across sessions, and lines from before a fix are not news."""

from __future__ import annotations

from pathlib import Path

import pytest

LOGS = Path(__file__).resolve().parents[1] / ".run" / "logs"
OFFSETS = pytest.StashKey[dict[str, int]]()


def record_offsets(config: pytest.Config) -> None:
    config.stash[OFFSETS] = {log.name: log.stat().st_size for log in LOGS.glob("*.log")}


def session_start(config: pytest.Config, log: Path) -> int:
    """Where ``log`` ended when the session began (0 if it did not exist)."""
    return config.stash[OFFSETS].get(log.name, 0)


def written_since(log: Path, start: int) -> bytes:
    """What ``log`` gained past ``start`` (all of it if it was cut meanwhile)."""
    with log.open("rb") as file:
        if file.seek(0, 2) < start:
            start = 0
        file.seek(start)
        return file.read()
