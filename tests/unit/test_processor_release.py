"""The processor's release of held events survives any failure: an error outside the
database-away kind (a table dropped, a bad row) once ended the releasing task silently,
and held events waited for a restart."""

from __future__ import annotations

import asyncpg
import pytest

from services.processor import app


async def test_a_failure_of_any_kind_is_logged_and_the_next_tick_releases(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    async def release_held(_processor: object) -> tuple[int, int]:
        calls.append("held")
        if len(calls) == 1:
            raise asyncpg.exceptions.UndefinedTableError('relation "held_events" does not exist')
        return 0, 0

    async def release_deferred(_processor: object) -> int:
        return 0

    monkeypatch.setattr(app, "release_held", release_held)
    monkeypatch.setattr(app, "release_deferred", release_deferred)
    await app.release(object())  # type: ignore[arg-type]
    await app.release(object())  # type: ignore[arg-type]
    assert calls == ["held", "held"]
    assert "releasing held events failed" in caplog.text
