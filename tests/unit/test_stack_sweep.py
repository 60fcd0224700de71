"""``stack.py down`` stops what no pid file names any more: every process the stack
starts carries a mark in its environment, and ``sweep`` stops the marked ones still
running (a service a test started over another, a process left by a failed run) — and
nothing else. A mark of the test's own stands in for the stack's, so the stack that may
be running beside this test is left alone."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack() -> Iterator[ModuleType]:
    before = dict(os.environ)
    spec = importlib.util.spec_from_file_location("local_stack", ROOT / "deploy/local/stack.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:  # its import marks this process's environment: not this test's children
        sys.modules.pop(spec.name, None)
        os.environ.clear()
        os.environ.update(before)


def sleeper(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                            env=env, start_new_session=True)


def test_sweep_stops_the_marked_processes_and_no_other(stack: ModuleType) -> None:
    mark = f"{stack.STACK_MARK}=/tmp/sweep-test-{uuid.uuid4().hex}"
    name, value = mark.split("=", 1)
    clean = {k: v for k, v in os.environ.items() if k != stack.STACK_MARK}
    marked = [sleeper({**clean, name: value}) for _ in range(2)]
    other = sleeper({**clean, name: value + "-another"})
    try:
        # a child has its environment once it runs: wait until both read as marked
        end = time.monotonic() + 10
        while not all(stack._marked(p.pid, mark.encode()) for p in marked):
            assert time.monotonic() < end, "the sleepers never started"
            time.sleep(0.05)
        swept = stack.sweep(mark, deadline_s=5)
        assert sorted(pid for pid, _ in swept) == sorted(p.pid for p in marked)
        assert all("time.sleep(120)" in command for _, command in swept)
        for process in marked:
            assert process.wait(5) is not None
        assert other.poll() is None, "a process of another mark was stopped"
        assert stack.sweep(mark, deadline_s=1) == []
    finally:
        for process in (*marked, other):
            process.kill()
            process.wait(5)


def test_every_process_the_stack_starts_is_marked(stack: ModuleType) -> None:
    assert os.environ[stack.STACK_MARK] == str(stack.RUN_DIR)
    assert os.getpid() in stack._ancestors()  # never swept by its own down
