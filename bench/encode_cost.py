"""What an encoded record costs when it is kept (a batch's records, a cohort's members):
orjson's own answer against ``shared.adapters.kafka.encode`` (the same bytes, copied to
their size). ``python -m bench.encode_cost [records]``.

orjson 3.12 on answers in its working buffer, 4 kB or more whatever the JSON's length;
``sys.getsizeof`` shows only the JSON's. Kept by the thousand, each record holds a page of
memory and costs its page fault; a copy costs a tenth of a microsecond. Each figure is
from a fresh interpreter (freed memory would be reused and hide the growth).
"""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import sys, time, orjson
from shared.adapters.kafka import encode
way = {"orjson": orjson.dumps, "encode": encode}[sys.argv[1]]
values = [{"stepId": i, "profileId": f"p-{i:07d}", "kind": "entered"} if sys.argv[2] == "record"
          else f"p-{i:07d}" for i in range(int(sys.argv[3]))]
def rss_kb():
    return int(open("/proc/self/statm").read().split()[1]) * 4
before, started = rss_kb(), time.perf_counter()
kept = [way(v) for v in values]
print((time.perf_counter() - started) / len(values) * 1e6, (rss_kb() - before) / len(values))
"""


def kept_cost(way: str, shape: str, records: int) -> tuple[float, float]:
    """µs a kept encoding and kB of memory it holds, measured in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", _PROBE, way, shape, str(records)],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(f"{records:,} values encoded and kept (a fresh interpreter each)")
    print(f"{'value':<8} {'way':<8} {'µs each':>8} {'kB held each':>13}")
    for shape in ("string", "record"):
        for way in ("orjson", "encode"):
            us, kb = kept_cost(way, shape, records)
            print(f"{shape:<8} {way:<8} {us:8.2f} {kb:13.2f}")


if __name__ == "__main__":
    main()
