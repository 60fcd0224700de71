"""wrk as the closed-loop client: one Lua script that rotates the request bodies, and a
parser for its summary (``--latency`` adds the percentiles)."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any


def _lua_script(url: str, bodies: list[bytes]) -> str:
    # Requests are formatted once per thread in init(); request() only picks the next one.
    path = "/" + url.split("/", 3)[3]
    literals = ",\n".join(f"[==[{b.decode()}]==]" for b in bodies)
    key = os.environ.get("PARCOURS_BENCH_KEY", "")
    return f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
local bodies = {{ {literals} }}
local requests = {{}}
local i = 0
init = function(args)
  for k, body in ipairs(bodies) do requests[k] = wrk.format("POST", "{path}", nil, body) end
end
request = function()
  i = i % #requests + 1
  return requests[i]
end
"""


def run_wrk(url: str, bodies: list[bytes], seconds: float, connections: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua_script(url, bodies))
    try:
        # One thread: a second would take CPU from the server on a 2-core machine.
        done = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
             "--timeout", "10s", "-s", script.name, url],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        )
    finally:
        Path(script.name).unlink(missing_ok=True)
    return {"client": "wrk", **parse_wrk(done.stdout)}


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(number: str, unit: str) -> float:
    return float(number) * _UNITS[unit]


def parse_wrk(text: str) -> dict[str, Any]:
    """wrk's summary as numbers: requests, ok (non-2xx/3xx and socket errors removed),
    duration, ok_per_s and the latency percentiles it prints with ``--latency``."""
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if total is None:
        raise ValueError(f"not a wrk summary: {text[:200]!r}")
    requests, duration = int(total[1]), _seconds(total[2], total[3])
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        text)
    errors = (int(non_2xx[1]) if non_2xx else 0)
    socket_errors = sum(int(n) for n in sockets.groups()) if sockets else 0
    ok = max(0, requests - errors)
    result: dict[str, Any] = {
        "requests": requests, "ok": ok, "errors": errors, "socket_errors": socket_errors,
        "duration_s": duration, "ok_per_s": ok / duration if duration else 0.0,
    }
    for pct, number, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text,
                                        re.MULTILINE):
        result[f"p{pct}_ms"] = _seconds(number, unit) * 1000
    return result
