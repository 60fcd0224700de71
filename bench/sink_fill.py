"""The SMTP sink's CPU per message as its mailbox fills: does a sink holding its 200,000
messages slow P6 and B4? ``python -m bench.sink_fill``.

Starts a sink of its own on free ports (not the stack's), sends it 6,000 messages over 8
aiosmtplib connections empty, then again after filling it to 100,000, 200,000 and
250,000 messages (past its capacity: the oldest then go), and prints the sink's CPU per
message (``/proc``) and the rate each time.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid

import aiosmtplib

from bench.loadgen import ROOT, free_port, wait_until_ok

_HZ = os.sysconf("SC_CLK_TCK")
CONNECTIONS = 8
MEASURED = 6_000


def _ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _message(n: int) -> bytes:
    return (f"From: shop@shop.example\r\nTo: r{n}@bench.example\r\nSubject: Order {n}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@bench.example>\r\n\r\n"
            + ("x" * 70 + "\r\n") * 18).encode()


async def _send(port: int, count: int) -> None:
    async def connection(first: int) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await client.connect()
        for n in range(first, count, CONNECTIONS):
            await client.sendmail("shop@shop.example", [f"r{n}@bench.example"], _message(n))
        await client.quit()

    await asyncio.gather(*(connection(k) for k in range(CONNECTIONS)))


def main() -> None:
    smtp_port, http_port = free_port(), free_port()
    env = {**os.environ, "PARCOURS_SMTP_PORT": str(smtp_port),
           "PARCOURS_SMTP_SINK_HTTP_PORT": str(http_port)}
    sink = subprocess.Popen([sys.executable, "-m", "services.smtp_sink"], env=env, cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until_ok(f"http://127.0.0.1:{http_port}/duplicates", 30)
        print(f"sink CPU per message, {MEASURED:,} messages over {CONNECTIONS} connections")
        for label, fill in (("empty", 0), ("100,000 kept", 100_000),
                            ("200,000 kept", 100_000), ("after 250,000", 50_000)):
            if fill:
                asyncio.run(_send(smtp_port, fill))
            before, began = _ticks(sink.pid), time.monotonic()
            asyncio.run(_send(smtp_port, MEASURED))
            took = time.monotonic() - began
            cpu_us = (_ticks(sink.pid) - before) / _HZ * 1e6 / MEASURED
            with open(f"/proc/{sink.pid}/status") as status:
                rss = int(status.read().split("VmRSS:")[1].split()[0]) // 1024
            print(f"{label:<14} {cpu_us:>5.0f} µs/message  {MEASURED / took:>6,.0f} msg/s"
                  f"  RSS {rss} MB", flush=True)
    finally:
        sink.terminate()
        sink.wait(10)


if __name__ == "__main__":
    main()
