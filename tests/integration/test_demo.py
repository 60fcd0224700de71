"""``make demo`` as CI runs it: the seed scenarios on the local stack — S1, the
cart-abandonment email, and S2, the seed journey in test mode and then published, with
the per-node counts checked against what it generated — end with ``demo OK``."""

from __future__ import annotations

import subprocess
import sys

from tests.integration.conftest import ROOT


def test_make_demo_runs_both_seed_scenarios_to_demo_ok() -> None:
    done = subprocess.run([sys.executable, "deploy/local/demo.py"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "S1 OK" in done.stdout and done.stdout.rstrip().endswith("demo OK"), \
        done.stdout[-3000:]
    assert "live run: every count as generated" in done.stdout
    assert "test run: every count as generated" in done.stdout
